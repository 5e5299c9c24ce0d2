//! Masking must never panic, must report findings in bounds, sorted and
//! without overlaps, and must keep a valid JSON document valid.
#![no_main]

use std::sync::Arc;

use airlock::mask::{Column, Detectors, MaskSettings, Masked, Masker, RowMasker, Scratch, Strategy, Tally};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let strategy = match data.first().map(|b| b % 4) {
        Some(0) => Strategy::Redact,
        Some(1) => Strategy::Partial,
        Some(2) => Strategy::Token,
        _ => Strategy::Null,
    };
    let masker = Masker::new(&MaskSettings {
        detectors: Detectors::all(),
        default_strategy: strategy,
        json_secret_keys: true,
        ..MaskSettings::default()
    });
    let mut found = Vec::new();
    masker.scanner().scan(data, &mut found);
    let mut end = 0;
    for f in &found {
        assert!(f.start >= end && f.start < f.end && f.end <= data.len());
        end = f.end;
    }
    let mut scratch = Scratch::default();
    let mut tally = Tally::default();
    if serde_json::from_slice::<serde_json::Value>(data).is_ok() {
        if let Masked::Replaced(out) = masker.mask_json(data, &mut scratch, &mut tally) {
            assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok(), "masked JSON must stay JSON");
        }
    }
    let _ = masker.mask_text(data, &mut scratch, &mut tally);
    let _ = masker.mask_number(data, &mut scratch, &mut tally);

    // The same bytes as a DataRow body and as binary values of every type
    // Airlock rewrites.
    let mut rows = RowMasker::new(Arc::new(masker));
    let oids = [25, 114, 3802, 142, 21, 23, 20, 1700, 17, 869, 1009, 2249, 0, 99999];
    for format in [0i16, 1] {
        let columns: Vec<Column> =
            oids.iter().map(|&type_oid| Column { name: "c".into(), type_oid, format }).collect();
        rows.set_columns(&columns);
        let mut frame = vec![b'D'];
        frame.extend_from_slice(&((4 + 2 + oids.len() * (4 + data.len())) as u32).to_be_bytes());
        frame.extend_from_slice(&(oids.len() as u16).to_be_bytes());
        for _ in oids {
            frame.extend_from_slice(&(data.len() as i32).to_be_bytes());
            frame.extend_from_slice(data);
        }
        let _ = rows.mask_row(&Bytes::from(frame));
        let mut raw = vec![b'D'];
        raw.extend_from_slice(&((4 + data.len()) as u32).to_be_bytes());
        raw.extend_from_slice(data);
        let _ = rows.mask_row(&Bytes::from(raw));
    }
    rows.start_copy(data.first() == Some(&1));
    let mut copy = vec![b'd'];
    copy.extend_from_slice(&((4 + data.len()) as u32).to_be_bytes());
    copy.extend_from_slice(data);
    let _ = rows.mask_copy_data(&Bytes::from(copy));
});
