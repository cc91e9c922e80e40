//! Pricing rules of the demo service.

/// A price in cents with tax added, rounded half up.
pub fn with_tax(cents: u64, rate_percent: u64) -> u64 {
    (cents * (100 + rate_percent) + 50) / 100
}

/// The response body for a health probe.
pub fn health() -> &'static str {
    "ok"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_tax() {
        assert_eq!(with_tax(1000, 20), 1200);
    }

    #[test]
    fn rounds_half_up() {
        assert_eq!(with_tax(5, 10), 6);
    }

    #[test]
    fn reports_health() {
        assert_eq!(health(), "ok");
    }
}
