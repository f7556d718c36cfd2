//! The seed corpora of the fuzz targets (`fuzz/corpus/TARGET/seed-*`, committed): a few valid
//! inputs per target, so that every fuzzing run starts from real encodings and reaches the
//! checks behind decoding at once. They are the test vectors of `WIRE.md` (envelopes, frames,
//! control events, receipts, descriptors, rosters, rotations, chunk transfers), envelopes and
//! control events of the groups the fuzzers hold keys for (`fuzz/fixtures.rs`), every record
//! kind's example, and the example configurations in `config/`.
//!
//! This test fails when the committed seeds differ from what it makes, or when a target has
//! none. `LIAISON_WRITE_SEEDS=1 cargo test -p liaison-protocol --test fuzz_seeds` writes them
//! again (after a change to the wire format, say); the corpora's other files (what fuzzing
//! found) are left alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use liaison_protocol::group::Change;
use liaison_protocol::message::Handling;
use liaison_protocol::record::{Record, RecordKind};
use liaison_protocol::{IdentityKey, Payload, Timestamp};
use rand_core::SeedableRng;

#[path = "../../fuzz/fixtures.rs"]
mod fixtures;

const WIRE_MD: &str = include_str!("../WIRE.md");

/// Seeds are the files of a target's corpus whose names start with this.
const PREFIX: &str = "seed-";

#[test]
fn fuzz_seed_corpora_are_current() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let seeds = seeds(&fuzz);
    let targets = targets(&fuzz);
    for target in &targets {
        assert!(
            seeds.get(target).is_some_and(|s| !s.is_empty()),
            "the fuzz target {target} has no seeds: add some to seeds() in {}",
            file!()
        );
    }
    for target in seeds.keys() {
        assert!(
            targets.contains(target),
            "seeds for {target}, which is not a fuzz target"
        );
    }
    let write = std::env::var_os("LIAISON_WRITE_SEEDS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (target, wanted) in &seeds {
        let dir = fuzz.join("corpus").join(target);
        let held = committed(&dir);
        if write {
            std::fs::create_dir_all(&dir).expect("create the corpus directory");
            for name in held.keys().filter(|n| !wanted.contains_key(*n)) {
                std::fs::remove_file(dir.join(name)).expect("remove an old seed");
            }
            for (name, bytes) in wanted {
                std::fs::write(dir.join(name), bytes).expect("write a seed");
            }
        } else if &held != wanted {
            stale.push(target.as_str());
        }
    }
    assert!(
        stale.is_empty(),
        "the seed corpora of {stale:?} differ from what this test makes: \
         LIAISON_WRITE_SEEDS=1 cargo test -p liaison-protocol --test fuzz_seeds writes them"
    );
}

/// Every target's seeds, by file name.
fn seeds(fuzz: &Path) -> BTreeMap<String, BTreeMap<String, Vec<u8>>> {
    let vectors = wire_vectors();
    let mut out: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    let mut add = |target: &str, name: &str, bytes: Vec<u8>| {
        let previous = out
            .entry(target.to_owned())
            .or_default()
            .insert(format!("{PREFIX}{name}"), bytes);
        assert!(previous.is_none(), "seed {name} of {target} twice");
    };
    for (name, bytes) in &vectors {
        let target = match name.as_str() {
            n if n.starts_with("frame-") => "frame",
            n if n.starts_with("envelope") => "envelope",
            n if n == "genesis" || n.starts_with("control-") && !n.ends_with("-hash") => "control",
            n if n.starts_with("receipt") || n == "negative-receipt-small-order-r" => "receipt",
            n if n.starts_with("descriptor") || n.starts_with("negative-descriptor") => {
                "descriptor"
            }
            n if n.starts_with("roster") => "roster",
            n if n.starts_with("rotation") || n == "negative-rotation-old-key-only" => "rotation",
            n if n.starts_with("chunk-") => "transfer",
            _ => continue,
        };
        add(target, &format!("wire-{name}"), bytes.clone());
    }

    // Envelopes and events of the groups the fuzzers hold keys for: these pass every check.
    let (group, owner, mut rng) = fixtures::envelope_group();
    let amber = fixtures::text("subject", "body");
    add(
        "envelope",
        "fixture-amber",
        fixtures::seal(&group, &owner, 1, Handling::Amber, amber, &mut rng),
    );
    let red = fixtures::text("Seizure at the border", "3 icons, 1 manuscript");
    add(
        "envelope",
        "fixture-red",
        fixtures::seal(&group, &owner, 2, Handling::Red, red, &mut rng),
    );
    let mut record = fixtures::text("", "");
    record.payload = Record::example(RecordKind::Seizure)
        .to_payload(vec![])
        .expect("an example record encodes");
    add(
        "envelope",
        "fixture-record",
        fixtures::seal(&group, &owner, 3, Handling::Green, record, &mut rng),
    );
    let control = fixtures::control();
    add("control", "fixture-genesis", control.genesis.clone());
    add("control", "fixture-add-reader", control.next.clone());
    let mut after = control.state.clone();
    let local = fixtures::local(&control.owner, &control.exchange);
    after
        .apply(&control.next, Some(local))
        .expect("the fixture's next event applies");
    let remove = after
        .propose(
            &control.owner,
            Change::Remove {
                member: IdentityKey::from_seed(&[4; 32]).node_id(),
            },
            Timestamp(3),
            &mut rand_chacha::ChaCha8Rng::from_seed([9; 32]),
        )
        .expect("propose a removal");
    add("control", "fixture-remove-reader", remove);

    // Records: the `record` target reads `[kind, schema, body...]`, and UTF-8 input as JSON.
    for kind in RecordKind::ALL {
        let example = Record::example(kind);
        if let Payload::Record(data) = example.to_payload(vec![]).expect("an example encodes") {
            let (Ok(k), Ok(s)) = (u8::try_from(data.kind), u8::try_from(data.schema)) else {
                panic!("record kind and schema codes fit in a byte");
            };
            let mut bytes = vec![k, s];
            bytes.extend_from_slice(&data.body);
            add("record", &format!("{}-binary", kind.as_str()), bytes);
        }
        let json = serde_json::to_string_pretty(&example.to_json_value()).expect("JSON");
        add(
            "record",
            &format!("{}-json", kind.as_str()),
            json.into_bytes(),
        );
    }

    // Configurations: the commented examples shipped in config/.
    let config = fuzz.join("../config");
    for entry in std::fs::read_dir(&config).expect("read config/") {
        let path = entry.expect("config entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path.file_name().expect("file name").to_string_lossy();
            add(
                "config",
                &name,
                std::fs::read(&path).expect("read a config"),
            );
        }
    }
    out
}

/// The names of the fuzz targets (`fuzz/fuzz_targets/NAME.rs`).
fn targets(fuzz: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(fuzz.join("fuzz_targets"))
        .expect("read fuzz/fuzz_targets")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .filter_map(|p| Some(p.file_stem()?.to_string_lossy().into_owned()))
        .collect();
    out.sort();
    out
}

/// The seeds committed in `dir`, by file name (fuzzing's own finds are not seeds).
fn committed(dir: &PathBuf) -> BTreeMap<String, Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| e.expect("corpus entry"))
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(PREFIX)
                .then(|| (name, std::fs::read(e.path()).expect("read a seed")))
        })
        .collect()
}

/// The ```` ```hex NAME ```` blocks of WIRE.md.
fn wire_vectors() -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut lines = WIRE_MD.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line.trim().strip_prefix("```hex ") else {
            continue;
        };
        let mut text = String::new();
        for body in lines.by_ref() {
            if body.trim() == "```" {
                break;
            }
            text.extend(body.chars().filter(|c| !c.is_whitespace()));
        }
        let bytes = hex::decode(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        out.insert(name.trim().to_owned(), bytes);
    }
    out
}
