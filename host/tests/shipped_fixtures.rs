//! Contract 4 over the shipped fixtures: `sando gate test` passes every case
//! of every gate kind with the component that ships for it.

mod util;

use sando::domain::GateKind;
use util::{Sando, stdout};

#[test]
fn every_shipped_fixture_passes_its_gate_component() {
    let sando = Sando::new();
    let mut total = 0;
    for kind in GateKind::ALL {
        let dir = util::fixtures_dir().join(kind.as_str());
        let component = util::component(&format!("gate_{kind}"));
        let output =
            sando.run(&["gate", "test", component.to_str().unwrap(), dir.to_str().unwrap()]);
        let out = stdout(&output);
        assert!(output.status.success(), "{kind}:\n{out}{}", util::stderr(&output));
        let last = out.lines().last().unwrap_or_default();
        let passed: usize = last.split(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
        assert!(passed >= 2, "{kind}: expected at least two cases, got {last:?}");
        assert!(last.ends_with(" passed, 0 failed"), "{kind}: {last}");
        total += passed;
    }
    assert!(total >= 40, "contract: at least 40 fixture cases, found {total}");
}

#[test]
fn every_shipped_case_is_compiled_in_and_parses() {
    for kind in GateKind::ALL {
        let on_disk = sando::fixtures::discover(&util::fixtures_dir().join(kind.as_str())).unwrap();
        let listed = sando::fixtures::SHIPPED
            .iter()
            .filter(|c| c.dir.starts_with(&format!("{kind}/")))
            .count();
        let parsed = sando::fixtures::shipped(kind);
        assert_eq!(listed, on_disk.len(), "{kind}: every case on disk is in the binary");
        assert_eq!(parsed.len(), listed, "{kind}: every compiled-in case parses");
        for case in &parsed {
            let from_disk =
                sando::fixtures::Case::load(&util::fixtures_dir().join(&case.name)).unwrap();
            assert_eq!(case.output, from_disk.output, "{}", case.name);
            assert_eq!(case.expected, from_disk.expected, "{}", case.name);
        }
    }
}
