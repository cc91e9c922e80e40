//! The benchmark service's logic: what its routes answer.

use serde::Serialize;

#[derive(Serialize)]
pub struct Greeting {
    pub text: String,
    pub visits: i64,
}

/// The line the benchmark's second version changes.
pub fn greeting(name: &str, visits: i64) -> Greeting {
    Greeting { text: format!("hello, {name}"), visits }
}

pub async fn count_visit(pool: &sqlx::SqlitePool, name: &str) -> sqlx::Result<i64> {
    sqlx::query("INSERT INTO visits (name) VALUES (?)").bind(name).execute(pool).await?;
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM visits WHERE name = ?")
        .bind(name)
        .fetch_one(pool)
        .await?;
    Ok(n)
}

pub async fn pool() -> sqlx::Result<sqlx::SqlitePool> {
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
    sqlx::query("CREATE TABLE visits (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .execute(&pool)
        .await?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greets_by_name() {
        assert!(greeting("ops", 1).text.contains("ops"));
    }

    #[tokio::test]
    async fn counts_visits() {
        let pool = pool().await.unwrap();
        assert_eq!(count_visit(&pool, "a").await.unwrap(), 1);
        assert_eq!(count_visit(&pool, "a").await.unwrap(), 2);
        assert_eq!(count_visit(&pool, "b").await.unwrap(), 1);
    }
}
