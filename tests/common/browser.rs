//! A real browser for the page tests: Debian's `chromium`, headless,
//! driven over WebDriver by its `chromedriver` (both installed by
//! ci/setup.sh). The few WebDriver calls the tests need, over HTTP.

use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver and one headless chromium session; both end when it is
/// dropped.
pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

/// Whether chromium and chromedriver are here; when not, under CI that
/// fails the test, on a laptop it is skipped with a message.
pub fn available(test: &str) -> bool {
    let here = ["chromium", "chromedriver"].iter().all(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !here {
        let msg = format!("{test} needs chromium and chromedriver (run through ci/test.sh)");
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{msg}");
        eprintln!("SKIPPED {msg}");
    }
    here
}

impl Browser {
    pub fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        // reqwest is built without a TLS provider of its own (strata picks ring).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            rt,
        };
        let start = Instant::now();
        while b.call("GET", "/status", Value::Null).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1000"],
            },
        }}});
        let session = b
            .call("POST", "/session", caps)
            .expect("a chromium session");
        let id = session["sessionId"]
            .as_str()
            .expect("session id")
            .to_string();
        b.base = format!("{}/session/{id}", b.base);
        b
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url).json(&body),
        };
        self.rt.block_on(async {
            let resp = req.send().await.map_err(|e| e.to_string())?;
            let v: Value = resp.json().await.map_err(|e| e.to_string())?;
            match v["value"]["error"].as_str() {
                Some(e) => Err(format!("{e}: {}", v["value"]["message"])),
                None => Ok(v["value"].clone()),
            }
        })
    }

    /// Open `url` and wait for the page's script to have drawn it.
    pub fn open(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }))
            .expect("navigate");
        let start = Instant::now();
        while self.script("return document.body.getAttribute('data-ready')") != json!("1") {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the page never got ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Run `body` (a function body) in the page; what it returns.
    pub fn script(&self, body: &str) -> Value {
        self.call("POST", "/execute/sync", json!({"script": body, "args": []}))
            .unwrap_or_else(|e| panic!("script `{body}`: {e}"))
    }

    /// A real click (the browser's pointer) on the first element `css` finds.
    pub fn click(&self, css: &str) {
        let found = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .unwrap_or_else(|e| panic!("no `{css}`: {e}"));
        let id = found[ELEMENT].as_str().expect("element id");
        self.call("POST", &format!("/element/{id}/click"), json!({}))
            .unwrap_or_else(|e| panic!("click `{css}`: {e}"));
    }

    /// The browser console's entries so far: (level, message).
    pub fn console(&self) -> Vec<(String, String)> {
        let logs = self
            .call("POST", "/se/log", json!({"type": "browser"}))
            .expect("browser log");
        (logs.as_array().cloned().unwrap_or_default().iter())
            .map(|e| {
                (
                    e["level"].as_str().unwrap_or_default().to_string(),
                    e["message"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        let b64 = self
            .call("GET", "/screenshot", Value::Null)
            .expect("screenshot");
        decode(b64.as_str().expect("base64"))
    }
}

/// Standard base64, as WebDriver sends a screenshot.
fn decode(text: &str) -> Vec<u8> {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
    {
        let v = T.iter().position(|&t| t == c).expect("base64") as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.call("DELETE", "", Value::Null);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
