//! The node's configuration file: parsing and checking any text never panics, and an accepted
//! config survives a round trip through the TOML `init` writes.
#![no_main]

use std::path::Path;

use liaison_node::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::parse(text, Path::new("node.toml")) {
        let again = Config::parse(&config.to_toml(), Path::new("node.toml"))
            .expect("a config that parsed survives being written back");
        assert_eq!(again.name, config.name);
        assert_eq!(again.listen, config.listen);
        assert_eq!(again.api, config.api);
    }
});
