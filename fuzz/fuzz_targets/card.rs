//! Fuzzes `card.json` parsing and validation ([`ModelCard::from_json`]), the first thing the
//! page and the CLI do with a card: a card is accepted only if every value the app relies on
//! is usable, and using an accepted card never panics.

#![no_main]

use libfuzzer_sys::fuzz_target;
use xray_web::ml::card::ModelCard;

fuzz_target!(|data: &[u8]| {
    if let Ok(card) = ModelCard::from_json(data) {
        for p in [0.0f32, 0.3, 0.5, 0.99, 1.0] {
            let _ = card.label(p);
            let _ = card.uncertain(p);
        }
        let p = card.p_pneumonia([0.0, 1.0]);
        assert!((0.0..=1.0).contains(&p), "{p}");
        let _ = card.model.name();
        assert!(card.model.features() > 0);
        let again = serde_json::to_vec(&card).expect("a card serialises");
        ModelCard::from_json(&again).expect("a card written back parses");
    }
});
