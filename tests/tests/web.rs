//! The officers' web workspace in a real browser (headless Chromium over WebDriver) against
//! real nodes on loopback: login, live delivery between two nodes, replies in a thread, TLP:RED,
//! read-only officers, revoked grants, lock-out, TOTP, enrolment, CSP, right-to-left Arabic
//! pages, and axe-core on every main page.
//!
//! Screenshots of the main pages and the pages' load times go to `$LIAISON_SCREENSHOTS`
//! (the README's pictures are made with `LIAISON_SCREENSHOTS=docs/screenshots`), else to a
//! directory under the build's temporary directory. Load times are reported, never asserted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use liaison_node::accounts::Access;
use liaison_node::daemon::RunningNode;
use liaison_protocol::{GroupId, Role};
use liaison_tests::browser::{Driver, Page};
use liaison_tests::photos::photo_with_gps;
use liaison_tests::{create_group, knows_group, wait_until, Cluster};

const PASSWORD: &str = "correct horse battery staple";

fn shots() -> PathBuf {
    match std::env::var("LIAISON_SCREENSHOTS") {
        Ok(dir) => {
            let p = PathBuf::from(dir);
            if p.is_absolute() {
                p
            } else {
                // Relative to the workspace root, not to this crate.
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
            }
        }
        Err(_) => PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots"),
    }
}

async fn officer(node: &RunningNode, name: &str, grants: &[(GroupId, Access)], operator: bool) {
    let grants: BTreeMap<GroupId, Access> = grants.iter().copied().collect();
    node.accounts.add(name, grants).await.expect("add officer");
    node.accounts
        .set_password(name, PASSWORD, false)
        .await
        .expect("password");
    if operator {
        node.accounts
            .update(name, |a| {
                a.operator = true;
                Ok(())
            })
            .await
            .expect("operator");
    }
}

fn url(node: &RunningNode) -> String {
    node.web_url.clone().expect("web workspace on")
}

/// Checks axe-core on the page open in `page`, collecting failures by page name.
async fn accessible(page: &Page, name: &str, failures: &mut Vec<String>) {
    for v in page.axe().await {
        failures.push(format!("{name}: {v}"));
    }
}

struct Times(String);

impl Times {
    fn add(&mut self, page: &str, ms: f64) {
        let _ = writeln!(self.0, "| {page} | {ms:.0} |");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn officers_on_two_nodes_work_together_in_the_browser() {
    let c = Cluster::start(&["customs-nl", "customs-be"]).await;
    c.link(0, 1).await;
    let (nl, be) = (c.node(0), c.node(1));
    let g = create_group(nl, "Operation Heritage 2026", &[(be, Role::Member)])
        .await
        .expect("group");
    wait_until("group reaches customs-be", || knows_group(&be.handle, g))
        .await
        .expect("group");
    officer(nl, "ana", &[(g, Access::Post)], true).await;
    officer(be, "ben", &[(g, Access::Post)], false).await;
    officer(be, "carl", &[(g, Access::Post)], false).await;
    officer(be, "rita", &[(g, Access::Read)], false).await;
    let (a, b) = (url(nl), url(be));
    let dir = shots();
    let mut times = Times(String::from("| page | load time (ms) |\n|---|---|\n"));
    let mut axe = Vec::new();

    let mut driver = Driver::start();
    let ana = driver.session("en-GB").await;
    let ben = driver.session("en-GB").await;

    // Login page (before logging in), then both officers log in.
    times.add("login", ana.open(&format!("{a}login")).await);
    accessible(&ana, "login", &mut axe).await;
    ana.screenshot(&dir, "login").await;
    ana.login(&a, "ana", PASSWORD).await;
    ana.wait_for_text("Your groups").await;
    ben.login(&b, "ben", PASSWORD).await;
    ben.wait_for_text("Operation Heritage 2026").await;

    // Ben watches the group's timeline on customs-be; a marker shows the page is not reloaded.
    times.add("timeline", ben.open(&format!("{b}g/{g}")).await);
    ben.js("window.notReloaded = true;", vec![]).await;

    // Ana composes on customs-nl.
    times.add("compose", ana.open(&format!("{a}g/{g}/compose")).await);
    accessible(&ana, "compose", &mut axe).await;
    ana.select("#handling", "amber").await;
    ana.fill("#subject", "Seizure: Roman bronze statuette, Rotterdam")
        .await;
    ana.fill(
        "#body",
        "Container MSCU 123456-7 from Beirut; export licence appears forged.",
    )
    .await;
    ana.screenshot(&dir, "compose").await;
    ana.click("form.panel button[type=submit]").await;
    ana.wait_for_path("/m/").await;
    ana.wait_for_text("TLP:AMBER").await;
    let seizure = ana.path().await.trim_start_matches("/m/").to_owned();
    assert_eq!(seizure.len(), 64, "a message page after posting: {seizure}");

    // It appears on Ben's timeline on the other node without a reload.
    ben.find(&format!("#m-{seizure}")).await;
    assert_eq!(
        ben.js("return window.notReloaded === true;", vec![]).await,
        serde_json::Value::Bool(true),
        "the timeline was reloaded instead of updated live"
    );
    accessible(&ben, "timeline", &mut axe).await;
    ben.screenshot(&dir, "timeline").await;

    // Ana keeps her message open; Ben answers from the thread; the reply appears in Ana's
    // thread live, and both nodes show the thread with both messages.
    times.add("message", ana.open(&format!("{a}m/{seizure}")).await);
    ana.js("window.notReloaded = true;", vec![]).await;
    ben.open(&format!("{b}m/{seizure}")).await;
    ben.wait_for_text("Held by").await;
    ben.click("a.button[href*='reply_to']").await;
    ben.fill(
        "#body",
        "Checked at Antwerp: nothing found on the sister shipment.",
    )
    .await;
    ben.click("form.panel button[type=submit]").await;
    ben.wait_for_text("Checked at Antwerp").await;
    let reply = ben.path().await.trim_start_matches("/m/").to_owned();
    ana.find(&format!("ol.thread [data-id='{reply}']")).await;
    assert_eq!(
        ana.js("return window.notReloaded === true;", vec![]).await,
        serde_json::Value::Bool(true)
    );
    ana.open(&format!("{a}m/{seizure}")).await;
    ana.wait_for_text("Re: Seizure: Roman bronze statuette")
        .await;
    ana.wait_for_text("customs-be").await; // receipts: customs-be holds it
    accessible(&ana, "message", &mut axe).await;
    ana.screenshot(&dir, "message").await;
    ben.open(&format!("{b}m/{reply}")).await;
    assert!(
        ben.has(&format!("ol.thread [data-id='{seizure}']")).await,
        "thread on customs-be"
    );

    // TLP:RED for ben@customs-be only.
    ana.open(&format!("{a}g/{g}/compose")).await;
    ana.select("#handling", "red").await;
    ana.fill("#subject", "Informant report").await;
    ana.fill("#body", "Only for Ben.").await;
    ana.click("form.panel button[type=submit]").await;
    // Without recipients the form is refused, and says so at the recipients field.
    ana.find("#recipients-error").await;
    assert!(ana.has("#to-customs-be[aria-invalid='true']").await);
    accessible(&ana, "compose with errors", &mut axe).await;
    ana.screenshot(&dir, "compose-errors").await;
    ana.fill("#to-customs-be", "ben").await;
    ana.click("form.panel button[type=submit]").await;
    ana.wait_for_path("/m/").await;
    ana.wait_for_text("TLP:RED").await;
    let red = ana.path().await.trim_start_matches("/m/").to_owned();
    ben.open(&format!("{b}g/{g}")).await;
    ben.find(&format!("#m-{red}")).await;
    ben.open(&format!("{b}m/{red}")).await;
    ben.wait_for_text("Only for Ben.").await;
    ben.close().await;
    let carl = driver.session("en-GB").await;
    carl.login(&b, "carl", PASSWORD).await;
    carl.wait_for_text("Your groups").await;
    carl.open(&format!("{b}g/{g}")).await;
    carl.find(&format!("#m-{seizure}")).await;
    assert!(
        !carl.has(&format!("#m-{red}")).await,
        "RED listed to a non-recipient"
    );
    carl.open(&format!("{b}m/{red}")).await;
    carl.wait_for_text("Not found").await;
    assert!(!carl.text().await.contains("Only for Ben."));
    carl.close().await;

    // A reader cannot compose; a revoked grant removes the group at the next page load.
    let rita = driver.session("en-GB").await;
    rita.login(&b, "rita", PASSWORD).await;
    rita.wait_for_text("Operation Heritage 2026").await;
    rita.open(&format!("{b}g/{g}")).await;
    rita.find(&format!("#m-{seizure}")).await;
    assert!(
        !rita.has(&format!("a[href='/g/{g}/compose']")).await,
        "compose offered to a reader"
    );
    rita.open(&format!("{b}g/{g}/compose")).await;
    rita.wait_for_text("You may only read this group").await;
    be.accounts
        .set_grant("rita", g, None)
        .await
        .expect("revoke");
    rita.open(&b).await;
    rita.wait_for_text("You have no groups yet").await;
    assert!(!rita.text().await.contains("Operation Heritage 2026"));
    rita.open(&format!("{b}g/{g}")).await;
    rita.wait_for_text("Not found").await;
    rita.close().await;

    // The groups page with its unread count, and the operator pages.
    times.add("groups", ana.open(&a).await);
    accessible(&ana, "groups", &mut axe).await;
    ana.screenshot(&dir, "groups").await;
    for (path, name) in [
        ("admin/accounts", "accounts"),
        ("admin/peers", "peers"),
        ("admin/groups", "admin-groups"),
        ("admin/audit", "audit"),
    ] {
        times.add(name, ana.open(&format!("{a}{path}")).await);
        if name == "peers" {
            // Why each peer is admitted: the demo's peers are pinned by hand.
            ana.wait_for_text("pinned here").await;
        }
        accessible(&ana, name, &mut axe).await;
        ana.screenshot(&dir, name).await;
    }
    ana.wait_for_text("The audit chain is intact").await;
    // Nothing on any of these pages came from another origin.
    let origin = a.trim_end_matches('/');
    assert_eq!(ana.foreign_resources(origin).await, Vec::<String>::new());

    // Arabic pages render right to left.
    ana.open(&format!("{a}g/{g}")).await;
    ana.select("#lang-select", "ar").await;
    ana.click("header.top form[action='/lang'] button").await;
    ana.wait_for_text("تصفية").await;
    let dir_attr = ana
        .js("return [document.documentElement.getAttribute('dir'), getComputedStyle(document.querySelector('main')).direction];", vec![])
        .await;
    assert_eq!(dir_attr, serde_json::json!(["rtl", "rtl"]));
    accessible(&ana, "timeline (Arabic)", &mut axe).await;
    ana.screenshot(&dir, "timeline-ar").await;
    ana.close().await;

    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("load-times.md"), &times.0).expect("load times");
    println!("page load times (browser navigation timing):\n{}", times.0);
    assert!(
        axe.is_empty(),
        "axe-core found serious or critical violations:\n{}",
        axe.join("\n")
    );
    c.shutdown().await;
}

/// Sets a date input (typing into one depends on the browser's locale).
async fn set_date(page: &Page, css: &str, date: &str) {
    page.find(css).await;
    page.js(
        "document.querySelector(arguments[0]).value = arguments[1];",
        vec![css.into(), date.into()],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_composed_shown_and_answered_in_the_browser() {
    let c = Cluster::start(&["customs-nl", "customs-be"]).await;
    c.link(0, 1).await;
    let (nl, be) = (c.node(0), c.node(1));
    let g = create_group(nl, "Operation Heritage 2026", &[(be, Role::Member)])
        .await
        .expect("group");
    wait_until("group reaches customs-be", || knows_group(&be.handle, g))
        .await
        .expect("group");
    officer(nl, "ana", &[(g, Access::Post)], false).await;
    officer(be, "ben", &[(g, Access::Post)], false).await;
    let (a, b) = (url(nl), url(be));
    let dir = shots();
    let mut axe = Vec::new();
    let mut driver = Driver::start();
    let ana = driver.session("en-GB").await;
    let ben = driver.session("en-GB").await;
    ana.login(&a, "ana", PASSWORD).await;
    ana.wait_for_text("Your groups").await;
    ben.login(&b, "ben", PASSWORD).await;
    ben.wait_for_text("Your groups").await;

    // A form for every kind (feedback only in answer to an alert or request).
    for kind in ["seizure", "cultural_object", "alert", "request"] {
        ana.open(&format!("{a}g/{g}/compose?kind={kind}")).await;
        ana.find("input[type=hidden][name=kind]").await;
        accessible(&ana, &format!("compose {kind}"), &mut axe).await;
    }
    ana.open(&format!("{a}g/{g}/compose?kind=feedback")).await;
    ana.wait_for_text("Not found").await;

    // A seizure report: what is required and left empty is named at its field first ...
    ana.open(&format!("{a}g/{g}/compose?kind=seizure")).await;
    ana.select("#handling", "amber").await;
    ana.select("#r-items-0-commodity", "cultural_heritage")
        .await;
    ana.fill(
        "#r-items-0-description",
        "Roman bronze statuette, 2nd century",
    )
    .await;
    ana.fill("#r-items-0-hs_code", "12").await;
    ana.click("#send").await;
    ana.find("#r-date-error").await;
    for field in ["date", "place", "direction", "detection", "conveyance"] {
        assert!(
            ana.has(&format!("#r-{field}-error")).await,
            "no error next to {field}"
        );
    }
    assert!(ana.has("#r-direction[aria-invalid='true']").await);
    assert_eq!(
        ana.js(
            "return document.querySelector('#r-items-0-hs_code').value;",
            vec![]
        )
        .await,
        serde_json::json!("12"),
        "what was typed is kept"
    );
    // ... then what the record's checks refuse, each at its field.
    ana.fill("#r-reporting_country", "XX").await;
    set_date(&ana, "#r-date", "2026-01-20").await;
    ana.select("#r-place-location_type", "seaport").await;
    ana.fill("#r-place-locode", "NLRTM").await;
    ana.select("#r-direction", "import").await;
    ana.select("#r-detection", "intelligence").await;
    ana.select("#r-conveyance", "sea_container").await;
    ana.fill("#r-identifiers-containers", "MSCU1234566").await;
    ana.click("#send").await;
    ana.find("#r-reporting_country-error").await;
    assert!(ana.has("#r-items-0-hs_code-error").await, "HS code refused");
    assert!(ana.has("#r-reporting_country[aria-invalid='true']").await);
    assert!(!ana.has("#r-date-error").await, "the date was accepted");
    accessible(&ana, "record form with errors", &mut axe).await;
    ana.screenshot(&dir, "record-form-errors").await;
    // A second item in a row of its own, added without a script.
    ana.fill("#r-reporting_country", "NL").await;
    ana.fill("#r-items-0-hs_code", "9703").await;
    ana.click("button[name=more][value='/items']").await;
    ana.find("#r-items-1-commodity").await;
    ana.select("#r-items-1-commodity", "currency").await;
    ana.fill("#r-items-1-description", "Cash in euro notes")
        .await;
    ana.fill("#r-items-1-value-amount", "25000").await;
    ana.fill("#r-items-1-value-currency", "EUR").await;
    // A photo from a phone, with its GPS position: previewed, and warned about.
    let (photo, clean) = photo_with_gps(64, 48);
    let photo_dir = tempfile::tempdir().expect("photo dir");
    let photo_path = photo_dir.path().join("statuette.jpg");
    std::fs::write(&photo_path, &photo).expect("write the photo");
    ana.find("#files")
        .await
        .send_keys(&photo_path.to_string_lossy())
        .await
        .expect("choose the photo");
    ana.find("#photo-preview figure img").await;
    ana.find("#photo-preview .metadata-warning").await;
    accessible(&ana, "record form with a photo", &mut axe).await;
    ana.js(
        "document.querySelector('#photo-preview').scrollIntoView({block: 'center'});",
        vec![],
    )
    .await;
    ana.screenshot(&dir, "compose-photo").await;
    ana.click("#send").await;
    ana.wait_for_path("/m/").await;
    ana.wait_for_text("TLP:AMBER").await;
    let text = ana.text().await;
    assert!(!text.contains("not sent"), "refused:\n{text}");
    let seizure = ana.path().await.trim_start_matches("/m/").to_owned();
    assert_eq!(seizure.len(), 64, "a message page after posting: {seizure}");
    // The record in its schema's shape: labels, vocabulary values by their meaning, rows.
    for needle in [
        "Reporting country",
        "A seaport",
        "Cultural heritage",
        "Roman bronze statuette",
        "Cash in euro notes",
        "MSCU1234566",
    ] {
        assert!(text.contains(needle), "{needle:?} not shown:\n{text}");
    }
    assert!(
        ana.has("dl.record dd[data-field=items] ol.rows li:nth-child(2)")
            .await
    );
    // The photo is shown as a thumbnail made on this node.
    assert!(text.contains("statuette.jpg"), "no attachment:\n{text}");
    ana.find("ul.attachments img").await;
    assert!(
        photo_shown(&ana).await,
        "the thumbnail did not load on the author's node"
    );
    accessible(&ana, "record", &mut axe).await;
    ana.screenshot(&dir, "record").await;

    // Ben's node fetches the photo over QUIC; he sees it, opens it, and it carries no GPS.
    let mut shown = false;
    for _ in 0..200 {
        ben.open(&format!("{b}m/{seizure}")).await;
        if ben.has("ul.attachments img").await && photo_shown(&ben).await {
            shown = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(shown, "the photo never showed on the member's node");
    ben.js(
        "document.querySelector('#att-h').scrollIntoView({block: 'center'});",
        vec![],
    )
    .await;
    ben.screenshot(&dir, "photo").await;
    let href = ben
        .find("ul.attachments a.photo")
        .await
        .attr("href")
        .await
        .expect("href")
        .expect("a link to the photo");
    let opened = ben
        .js(
            "return fetch(arguments[0]).then(r => r.arrayBuffer().then(b => ({
                 type: r.headers.get('content-type'),
                 bytes: Array.from(new Uint8Array(b)),
             })));",
            vec![serde_json::json!(href)],
        )
        .await;
    assert_eq!(opened["type"], "image/jpeg");
    let bytes: Vec<u8> = serde_json::from_value(opened["bytes"].clone()).expect("bytes");
    assert_eq!(
        bytes, clean,
        "the photo is the author's, with its metadata removed"
    );

    // An alert; Ben on the other node watches the timeline for it.
    ben.open(&format!("{b}g/{g}")).await;
    ana.open(&format!("{a}g/{g}/compose?kind=alert")).await;
    ana.fill("#r-title", "Forged Lebanese export licences")
        .await;
    ana.click("input[name='/commodities'][value='cultural_heritage']")
        .await;
    ana.fill(
        "#r-risk_indicators",
        "Export licence stamped in Beirut\nAntiquities declared as handicrafts",
    )
    .await;
    set_date(&ana, "#r-valid_from", "2026-01-20").await;
    ana.select("#r-requested_action", "control_and_report")
        .await;
    ana.click("#send").await;
    ana.wait_for_text("Forged Lebanese export licences").await;
    ana.find("#give-feedback").await;
    let alert = ana.path().await.trim_start_matches("/m/").to_owned();
    assert_eq!(alert.len(), 64, "a message page after posting: {alert}");
    assert_eq!(
        ana.find("#state").await.text().await.expect("state"),
        "open"
    );
    ana.js("window.notReloaded = true;", vec![]).await;

    // Ben answers it with feedback that links the seizure report.
    ben.find(&format!("#m-{alert}")).await;
    ben.open(&format!("{b}m/{alert}")).await;
    ben.click("#give-feedback").await;
    ben.select("#r-outcome", "seizure_made").await;
    ben.fill("#r-seizure_report", &seizure).await;
    ben.fill("#r-comment", "Same forged stamp on a shipment at Antwerp.")
        .await;
    accessible(&ben, "feedback form", &mut axe).await;
    ben.click("#send").await;
    ben.wait_for_text("Same forged stamp").await;
    let feedback = ben.path().await.trim_start_matches("/m/").to_owned();
    assert_eq!(
        feedback.len(),
        64,
        "a message page after posting: {feedback}"
    );
    assert_eq!(
        ben.find("#state").await.text().await.expect("state"),
        "seizure made"
    );

    // It appears in Ana's open thread; the alert is closed by it.
    ana.find(&format!("ol.thread [data-id='{feedback}']")).await;
    assert_eq!(
        ana.js("return window.notReloaded === true;", vec![]).await,
        serde_json::Value::Bool(true)
    );
    ana.open(&format!("{a}m/{alert}")).await;
    assert_eq!(
        ana.find("#state").await.text().await.expect("state"),
        "closed: seizure made"
    );
    let item = ana
        .find(&format!("ol.thread [data-id='{feedback}']"))
        .await
        .text()
        .await
        .expect("thread item");
    assert!(item.contains("seizure made"), "{item}");
    accessible(&ana, "thread", &mut axe).await;
    ana.js(
        "document.querySelector('#thread-h').scrollIntoView();",
        vec![],
    )
    .await;
    ana.screenshot(&dir, "thread").await;

    // The timeline filters by kind.
    ana.open(&format!("{a}g/{g}?kind=alert")).await;
    ana.find(&format!("#m-{alert}")).await;
    assert!(
        !ana.has(&format!("#m-{seizure}")).await,
        "a seizure listed as an alert"
    );
    ana.close().await;
    ben.close().await;
    assert!(
        axe.is_empty(),
        "axe-core found serious or critical violations:\n{}",
        axe.join("\n")
    );
    c.shutdown().await;
}

/// Whether the first photo thumbnail on the page has loaded as an image.
async fn photo_shown(page: &Page) -> bool {
    page.js(
        "const i = document.querySelector('ul.attachments img');
         if (!i) { return false; }
         const loaded = () => i.naturalWidth > 0;
         if (i.complete) { return loaded(); }
         return new Promise(done => {
             i.addEventListener('load', () => done(loaded()));
             i.addEventListener('error', () => done(false));
         });",
        vec![],
    )
    .await
        == serde_json::Value::Bool(true)
}

/// The `data-seq` of every row of the audit table on the page.
async fn audit_rows(page: &Page) -> Vec<u64> {
    let v = page
        .js(
            "return [...document.querySelectorAll('tbody tr[data-seq]')].map(r => Number(r.dataset.seq));",
            vec![],
        )
        .await;
    v.as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_is_paged_and_filtered_in_the_browser() {
    let root = tempfile::tempdir().expect("tempdir");
    let node = liaison_tests::nodes::start_with(root.path(), "customs-nl", |_| {}).await;
    officer(&node, "ana", &[], true).await;
    let base = url(&node);
    let dir = shots();
    let mut axe = Vec::new();
    let mut driver = Driver::start();
    let ana = driver.session("en-GB").await;
    // One failed login, then enough operator page loads for more than one page of records.
    ana.login(&base, "ana", "not the password").await;
    ana.wait_for_text("Wrong officer name or password").await;
    ana.login(&base, "ana", PASSWORD).await;
    ana.wait_for_text("Your groups").await;
    for _ in 0..60 {
        ana.open(&format!("{base}admin/accounts")).await;
    }

    // The newest page: 50 records, newest first, consecutive, a link to older ones only.
    ana.open(&format!("{base}admin/audit")).await;
    ana.wait_for_text("The audit chain is intact").await;
    let first = audit_rows(&ana).await;
    assert_eq!(first.len(), 50, "{first:?}");
    assert!(first.windows(2).all(|w| w[0] == w[1] + 1), "{first:?}");
    assert!(!ana.has("#audit-newer").await);
    // Older, then newer again: the pages join without a gap and come back the same.
    ana.click("#audit-older").await;
    ana.find("#audit-newer").await;
    let second = audit_rows(&ana).await;
    assert_eq!(second.first().copied(), first.last().map(|s| s - 1));
    ana.click("#audit-newer").await;
    ana.find("#audit-older").await;
    assert_eq!(audit_rows(&ana).await, first);

    // Filtered by outcome: only the failed login; by action: only logins, both of them.
    ana.select("#a-outcome", "denied").await;
    ana.click("form.filters button[type=submit]").await;
    ana.wait_for_text("1 of 1 matching records").await;
    let text = ana.text().await;
    assert!(text.contains("denied: wrong name or password"), "{text}");
    accessible(&ana, "audit filtered", &mut axe).await;
    ana.screenshot(&dir, "audit-filtered").await;
    ana.open(&format!("{base}admin/audit?action=login")).await;
    ana.wait_for_text("2 of 2 matching records").await;
    ana.open(&format!(
        "{base}admin/audit?actor=operator%3Aana&action=user.list"
    ))
    .await;
    ana.wait_for_text("of 60 matching records").await;
    ana.close().await;
    assert!(
        axe.is_empty(),
        "axe-core found serious or critical violations:\n{}",
        axe.join("\n")
    );
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_protected() {
    let root = tempfile::tempdir().expect("tempdir");
    let node = liaison_tests::nodes::start_with(root.path(), "customs-nl", |c| {
        c.web.lockout_after = 3;
        c.web.require_totp = true;
    })
    .await;
    officer(&node, "ana", &[], true).await;
    officer(&node, "eve", &[], false).await;
    let base = url(&node);
    let origin = base.trim_end_matches('/').to_owned();

    // Headers of every page: CSP without inline script, framing denied, nothing cached.
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{base}login"))
        .send()
        .await
        .expect("login page");
    let h = r.headers();
    let csp = h
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(
        h.get("x-frame-options").map(|v| v.to_str().unwrap_or("")),
        Some("DENY")
    );
    assert_eq!(
        h.get("cache-control").map(|v| v.to_str().unwrap_or("")),
        Some("no-store")
    );
    // A login form sent from another site is refused before the password is looked at.
    let cross = http
        .post(format!("{base}login"))
        .header("origin", "http://attacker.example")
        .form(&[("name", "ana"), ("password", PASSWORD)])
        .send()
        .await
        .expect("post");
    assert_eq!(cross.status(), reqwest::StatusCode::FORBIDDEN);

    let mut driver = Driver::start();
    let page = driver.session("en-GB").await;

    // Lock-out after three failures: then even the right password is refused.
    for _ in 0..3 {
        page.login(&base, "eve", "wrong password here").await;
        page.find("#login-error").await;
    }
    page.wait_for_text("Too many failed attempts").await;
    page.login(&base, "eve", PASSWORD).await;
    page.wait_for_text("Too many failed attempts").await;
    assert_eq!(page.path().await, "/login");

    // TOTP is mandatory on this node: the first login leads to its set-up.
    page.login(&base, "ana", PASSWORD).await;
    let secret = page
        .find("#totp-secret")
        .await
        .text()
        .await
        .expect("secret");
    let totp = liaison_node::web::auth::totp(secret.trim(), "ana").expect("totp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    page.fill("#code", &totp.generate(now)).await;
    page.click("form[action='/account/totp'] button[type=submit]")
        .await;
    page.wait_for_text("A code from an authenticator app is asked for at every login")
        .await;
    page.click("header.top form[action='/logout'] button").await;
    page.wait_for_text("You are logged out").await;
    // The next login asks for a code; the code just used is refused, the next one works.
    page.login(&base, "ana", PASSWORD).await;
    page.find("#code").await;
    page.fill("#code", &totp.generate(now)).await;
    page.click("form.panel button[type=submit]").await;
    page.wait_for_text("That code is not right").await;
    page.fill("#code", &totp.generate(now + 30)).await;
    page.click("form.panel button[type=submit]").await;
    page.wait_for_text("Your groups").await;

    // The operator adds an officer with an enrolment link; the link sets a password.
    page.open(&format!("{base}admin/accounts")).await;
    page.fill("#new-name", "olga").await;
    page.click("form[action='/admin/accounts'] button[type=submit]")
        .await;
    let link = page
        .find("#enrolment-link")
        .await
        .text()
        .await
        .expect("link");
    assert!(link.starts_with(&format!("{origin}/enrol#")), "{link}");
    let newcomer = driver.session("fr-FR").await;
    newcomer.open(link.trim()).await;
    assert_eq!(
        newcomer.path().await,
        "/enrol",
        "the code left the address bar"
    );
    newcomer.wait_for_text("Définir votre mot de passe").await;
    newcomer.fill("#password", "olga's own long password").await;
    newcomer.fill("#confirm", "olga's own long password").await;
    newcomer.click("form.panel button[type=submit]").await;
    newcomer
        .wait_for_text("Votre mot de passe est défini")
        .await;
    newcomer.close().await;

    // Every login, failure, lock-out and logout is in the audit log.
    let audit = node.store.audit_records(1).expect("audit");
    let text: Vec<String> = audit
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .collect();
    let has = |needle: &str| text.iter().any(|r| r.contains(needle));
    assert!(has("\"action\":\"login\",\"target\":\"web\",\"outcome\":\"denied: wrong name or password; now locked\""));
    assert!(has("denied: locked after failed logins"));
    assert!(has("\"actor\":\"officer:ana\",\"action\":\"logout\""));
    assert!(has(
        "\"action\":\"login.totp\",\"target\":\"web\",\"outcome\":\"ok\""
    ));
    assert!(has("\"actor\":\"officer:olga\",\"action\":\"enrol\""));
    page.close().await;
    node.shutdown().await.expect("shutdown");
}

/// Accepts exactly the certificate whose SHA-256 fingerprint `liaison run` printed, as an
/// officer comparing it would.
#[derive(Debug)]
struct Pinned(String);

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if liaison_node::web::tls::fingerprint(end_entity) == self.0 {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("fingerprint differs".into()))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algs)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Beyond loopback the workspace is HTTPS only, with a self-signed certificate whose
/// fingerprint the node reports; plain HTTP gets no page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_the_workspace_is_https_with_a_reported_fingerprint() {
    let root = tempfile::tempdir().expect("tempdir");
    let node = liaison_tests::nodes::start_with(root.path(), "customs-nl", |c| {
        c.web.listen = "0.0.0.0:0".parse().expect("addr");
    })
    .await;
    let fingerprint = node
        .web_fingerprint
        .clone()
        .expect("self-signed fingerprint");
    let web = node.web_url.clone().expect("web url");
    assert!(web.starts_with("https://"), "{web}");
    let port: u16 = web
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let response = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(Pinned(fingerprint)))
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("tls");
        let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(
            format!("GET /login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .expect("request");
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out);
        // Plain HTTP on the same port gets no page.
        let mut plain = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        plain
            .write_all(b"GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("plain request");
        let mut back = Vec::new();
        let _ = plain.read_to_end(&mut back);
        (String::from_utf8_lossy(&out).into_owned(), back)
    })
    .await
    .expect("client");
    let (page, plain) = response;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.to_ascii_lowercase()
            .contains("strict-transport-security"),
        "{page}"
    );
    assert!(page.contains("__Host-") || page.contains("<form"), "{page}");
    assert!(
        !String::from_utf8_lossy(&plain).contains("<form"),
        "a page over plain HTTP"
    );
    node.shutdown().await.expect("shutdown");
}
