//! A real browser for the web workspace's tests: Debian's headless Chromium, driven over
//! WebDriver (chromedriver, `fantoccini`), one chromedriver process per test and one browser
//! session per officer, each with a fresh profile in a temporary directory.
//!
//! Chromium runs with `--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
//! --disable-background-networking --disable-component-update --disable-sync`, so it contacts
//! nothing but the pages it is sent to. The tests need `chromium` and `chromium-driver`: where
//! they are missing, the first test that needs them runs `.ci/install-browser` (Debian's
//! packages, as root or through sudo), so that `cargo test --workspace` sets up a fresh machine
//! by itself; `LIAISON_NO_BROWSER_INSTALL=1` forbids that, and the tests then fail and say why.
//! chromedriver runs in a process group of its own, and the whole group (the browsers it
//! started included) is killed when the test is over.
//!
//! [`Page::axe`] runs the vendored axe-core (`tests/assets/axe.min.js`) inside the page and
//! returns its serious and critical violations.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// The vendored axe-core.
const AXE: &str = include_str!("../assets/axe.min.js");

/// How long a wait for something in a page may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// A running chromedriver.
pub struct Driver {
    child: Child,
    port: u16,
    profiles: tempfile::TempDir,
    sessions: usize,
}

fn find(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p));
    }
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

impl Driver {
    /// Starts chromedriver on a free loopback port.
    pub fn start() -> Driver {
        let missing = "the browser tests need Debian's chromium and chromium-driver: run \
                       `.ci/install-browser` (as root: apt-get install -y chromium chromium-driver), \
                       or set CHROMIUM and CHROMEDRIVER";
        ensure_installed(missing);
        let driver = find("CHROMEDRIVER", &["/usr/bin/chromedriver"]).expect(missing);
        find("CHROMIUM", &["/usr/bin/chromium"]).expect(missing);
        let mut child = Command::new(&driver)
            .args(["--port=0", "--allowed-ips=127.0.0.1"])
            // Its own process group, so that the browsers it starts are killed with it.
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; {missing}", driver.display()));
        let stdout = child.stdout.take().expect("chromedriver stdout");
        let mut reader = std::io::BufReader::new(stdout);
        let mut port = None;
        let mut line = String::new();
        while port.is_none() {
            line.clear();
            let n = std::io::BufRead::read_line(&mut reader, &mut line).expect("read chromedriver");
            assert!(n > 0, "chromedriver exited before it started");
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                port = rest.trim().trim_end_matches('.').parse().ok();
            }
        }
        // Keep draining its output so that it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while std::io::BufRead::read_line(&mut reader, &mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        Driver {
            child,
            port: port.expect("chromedriver port"),
            profiles: tempfile::tempdir().expect("profile dir"),
            sessions: 0,
        }
    }

    /// A new browser session with a fresh profile, asking for pages in `accept_language`.
    pub async fn session(&mut self, accept_language: &str) -> Page {
        self.sessions += 1;
        let profile = self
            .profiles
            .path()
            .join(format!("profile-{}", self.sessions));
        let chromium = find("CHROMIUM", &["/usr/bin/chromium"]).expect("chromium");
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                    format!("--lang={accept_language}"),
                ],
                "prefs": { "intl.accept_languages": accept_language },
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a WebDriver session with chromium");
        Page { client }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver and every browser it started: killing chromedriver alone left the
        // browsers running after the test.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Installs Chromium and its driver with `.ci/install-browser` once per test process if they
/// are missing (see the module docs).
fn ensure_installed(missing: &str) {
    static INSTALLED: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut done = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
    let present = find("CHROMEDRIVER", &["/usr/bin/chromedriver"]).is_some()
        && find("CHROMIUM", &["/usr/bin/chromium"]).is_some();
    if *done || present {
        return;
    }
    assert!(
        std::env::var_os("LIAISON_NO_BROWSER_INSTALL").is_none(),
        "{missing} (LIAISON_NO_BROWSER_INSTALL is set, so the tests do not install them)"
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/install-browser");
    eprintln!(
        "installing chromium and chromium-driver: {}",
        script.display()
    );
    let status = Command::new(&script)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {missing}", script.display()));
    assert!(
        status.success(),
        "{} failed ({status}); {missing}",
        script.display()
    );
    *done = true;
}

/// One browser session.
pub struct Page {
    /// The WebDriver client.
    pub client: Client,
}

impl Page {
    /// Opens `url` and returns how long the browser says the navigation took (ms).
    pub async fn open(&self, url: &str) -> f64 {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
        self.load_time().await
    }

    /// The duration of the last navigation, from the Navigation Timing API (ms).
    pub async fn load_time(&self) -> f64 {
        self.js(
            "const n = performance.getEntriesByType('navigation')[0]; return n ? n.duration : -1;",
            vec![],
        )
        .await
        .as_f64()
        .unwrap_or(-1.0)
    }

    /// Runs `script` (a function body) in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// The current path and query.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Types `text` into the field `css`, replacing what it holds.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        field
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Chooses `value` in the select `css`.
    pub async fn select(&self, css: &str, value: &str) {
        let select = self.find(css).await;
        select
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("select {value} in {css}: {e}"));
    }

    /// Clicks `css` (and waits for the navigation it starts, if any).
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// The element `css`, waiting until it exists.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css} on {}: {e}", self.path_now()))
    }

    fn path_now(&self) -> String {
        String::from("the page")
    }

    /// Whether `css` exists now.
    pub async fn has(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.is_ok()
    }

    /// The text of the page's body.
    pub async fn text(&self) -> String {
        self.js("return document.body.innerText;", vec![])
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// Waits until the page's text contains `needle`.
    pub async fn wait_for_text(&self, needle: &str) {
        let start = Instant::now();
        loop {
            if self.text().await.contains(needle) {
                return;
            }
            assert!(
                start.elapsed() < WAIT,
                "{needle:?} did not appear on {}",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the browser is on a page whose path starts with `prefix` (a form's answer:
    /// text such as "TLP:AMBER" may be on the form itself, so it cannot tell that the answer
    /// has come).
    pub async fn wait_for_path(&self, prefix: &str) {
        let start = Instant::now();
        loop {
            let path = self.path().await;
            if path.starts_with(prefix) {
                return;
            }
            assert!(start.elapsed() < WAIT, "still on {path}, not on {prefix}…");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a screenshot as `dir/name.png`.
    pub async fn screenshot(&self, dir: &Path, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::create_dir_all(dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// Runs axe-core in the page; returns the serious and critical violations as
    /// `rule: target…` lines.
    pub async fn axe(&self) -> Vec<String> {
        self.js(AXE, vec![]).await;
        let result = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] })
                   .then(r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                     .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' — '
                       + v.nodes.map(n => n.target.join(' ')).join(', '))))
                   .catch(e => done(['axe failed: ' + e]));",
                vec![],
            )
            .await
            .expect("axe-core");
        result
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every resource the page loaded that is not from `origin`.
    pub async fn foreign_resources(&self, origin: &str) -> Vec<String> {
        let all = self
            .js(
                "return performance.getEntriesByType('resource').map(e => e.name);",
                vec![],
            )
            .await;
        all.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str())
                    .filter(|u| !u.starts_with(origin))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Logs in as `officer` with `password` at `base` (ending in `/`).
    pub async fn login(&self, base: &str, officer: &str, password: &str) {
        self.open(&format!("{base}login")).await;
        self.fill("#name", officer).await;
        self.fill("#password", password).await;
        self.click("form.panel button[type=submit]").await;
    }

    /// Ends the session.
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
