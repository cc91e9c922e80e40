//! The status page in a real browser: headless Chromium (Debian's `chromium`, which `./x test` installs) opens the demo's page and a run's page, as someone following a notification's link would.

mod util;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The page's verdict colours (its stylesheet's): passed, blocked, failed.
const GREEN: [u8; 3] = [0x1a, 0x7f, 0x37];
const YELLOW: [u8; 3] = [0xd4, 0xa7, 0x2c];
const RED: [u8; 3] = [0xcf, 0x22, 0x2e];

/// Headless Chromium with a profile of its own under `dir`, run as root
/// (the machines here are), answering within a minute.
fn chromium(dir: &Path, args: &[&str]) -> std::process::Output {
    let program = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|p| Command::new("which").arg(p).output().is_ok_and(|o| o.status.success()))
        .expect("chromium is installed (./x test installs Debian's chromium)");
    let output = Command::new("timeout")
        .arg("60")
        .arg(program)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        .args(["--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1"])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .args(args)
        .env("HOME", dir)
        .output()
        .expect("run chromium");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// How many pixels of a PNG are exactly `rgb`.
fn pixels_of(png: &[u8], rgb: [u8; 3]) -> usize {
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = match info.color_type {
        png::ColorType::Rgba => 4,
        png::ColorType::Rgb => 3,
        other => panic!("an unexpected screenshot colour type {other:?}"),
    };
    buf[..info.buffer_size()].chunks(step).filter(|p| p[..3] == rgb).count()
}

#[test]
fn the_demo_page_shows_red_yellow_and_green_and_a_runs_page_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let demo = util::Demo::start(&dir.path().join("demo"));
    assert!(demo.printed.contains(&format!("Browse:   {}/ ", demo.url)), "{}", demo.printed);
    let (_, red, yellow) = demo.outcomes(Duration::from_secs(180));

    // The overview, rendered and painted by the browser.
    let shot = dir.path().join("overview.png");
    chromium(
        dir.path(),
        &[
            "--window-size=1400,1200",
            &format!("--screenshot={}", shot.display()),
            &format!("{}/", demo.url),
        ],
    );
    let png = std::fs::read(&shot).unwrap();
    for (name, rgb) in [("green", GREEN), ("yellow", YELLOW), ("red", RED)] {
        let n = pixels_of(&png, rgb);
        assert!(n > 300, "{name} shows on the page: {n} pixels");
    }
    let dom =
        String::from_utf8(chromium(dir.path(), &["--dump-dom", &format!("{}/", demo.url)]).stdout)
            .unwrap();
    for text in ["staging", "prod", "migration_dry_run", "burn_in", "0.2.0"] {
        assert!(dom.contains(text), "{text} on the page:\n{dom}");
    }
    // Read-only: nothing on it acts.
    for tag in ["<form", "<button", "method=\"post\""] {
        assert!(!dom.to_lowercase().contains(tag), "{tag} on a read-only page");
    }
    let run = red["run_id"].as_i64().unwrap();
    assert!(dom.contains(&format!("href=\"/runs/{run}\"")), "the red run is linked:\n{dom}");

    // The red run's page: its verdict and its log, as the browser shows it.
    let dom = String::from_utf8(
        chromium(dir.path(), &["--dump-dom", &format!("{}/runs/{run}", demo.url)]).stdout,
    )
    .unwrap();
    assert!(dom.contains("verdict failed"), "{dom}");
    assert!(dom.contains("migration_modified"), "the typed verdict: {dom}");
    let log = demo.get(&format!("/api/gate-runs/{run}/log")).unwrap();
    let last = log.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
    let shown = last.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    assert!(dom.contains(&shown), "the log's last line {last:?} on the run's page:\n{dom}");
    // The yellow run's page is yellow.
    let blocked = yellow["run_id"].as_i64().unwrap();
    let dom = String::from_utf8(
        chromium(dir.path(), &["--dump-dom", &format!("{}/runs/{blocked}", demo.url)]).stdout,
    )
    .unwrap();
    assert!(dom.contains("verdict blocked") && dom.contains("burn_in"), "{dom}");
    // A run that does not exist is a 404, not a page.
    assert_eq!(demo.get("/runs/999999"), None);
}
