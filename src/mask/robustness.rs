//! Randomised inputs built from the pieces detectors react to: whatever the
//! bytes, masking must not panic, findings must be in bounds, sorted and
//! disjoint, valid JSON must stay valid, and a rewritten row must be a
//! well-formed DataRow. (`fuzz/fuzz_targets/mask.rs` runs the same checks
//! under libFuzzer.)

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const PIECES: &[&[u8]] = &[
    b"@",
    b"jane@example.org",
    b"4111 1111 1111 1111",
    b"4111111111111111",
    b"DE89370400440532013000",
    b"+1 415-555-2671",
    b"(415)",
    b"536-90-4399",
    b"203.0.113.7",
    b"2001:db8::1",
    b"::",
    b"AKIA",
    b"AKIAQWERTYUIOPASDFGH",
    b"ghp_",
    b"eyJ",
    b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
    b"-----BEGIN RSA PRIVATE KEY-----",
    b"-----END",
    b"://",
    b"postgres://u:p@h",
    b"\"",
    b"\\",
    b"\\u00",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b" ",
    b"-",
    b".",
    b"\n",
    b"\t",
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
    b"0",
    b"9",
    b"x",
    b"AB",
    b"sk-",
    b"T3BlbkFJ",
    b"xoxb-",
    b"secret_access_key=",
    b"\"password\": ",
    b"00",
    b"ext. 12",
];

fn random_input(rng: &mut StdRng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.gen_range(0..24) {
        if rng.gen_bool(0.2) {
            let n = rng.gen_range(0..6);
            out.extend((0..n).map(|_| rng.gen::<u8>()));
        } else {
            out.extend_from_slice(PIECES[rng.gen_range(0..PIECES.len())]);
        }
    }
    out
}

fn data_row(values: &[&[u8]]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(b'D');
    out.put_u32(0);
    out.put_u16(values.len() as u16);
    for v in values {
        out.put_i32(v.len() as i32);
        out.put_slice(v);
    }
    let len = (out.len() - 1) as u32;
    out[1..5].copy_from_slice(&len.to_be_bytes());
    out.freeze()
}

fn well_formed_row(frame: &[u8]) -> bool {
    let Some(body) = frame.get(5..) else {
        return false;
    };
    if u32::from_be_bytes(frame[1..5].try_into().unwrap()) as usize != frame.len() - 1 {
        return false;
    }
    let count = u16::from_be_bytes([body[0], body[1]]) as usize;
    let mut at = 2;
    for _ in 0..count {
        let Some(len) = body.get(at..at + 4) else {
            return false;
        };
        let len = i32::from_be_bytes(len.try_into().unwrap());
        at += 4 + len.max(0) as usize;
    }
    at == body.len()
}

#[test]
fn random_inputs_keep_the_invariants() {
    let mut rng = StdRng::seed_from_u64(0x00A1_210C);
    let strategies = [
        Strategy::Redact,
        Strategy::Partial,
        Strategy::Token,
        Strategy::Null,
    ];
    let maskers: Vec<Arc<Masker>> = strategies
        .iter()
        .map(|&s| {
            Arc::new(Masker::new(&MaskSettings {
                detectors: Detectors::all(),
                default_strategy: s,
                json_secret_keys: true,
                ..MaskSettings::default()
            }))
        })
        .collect();
    let oids = [
        25u32, 114, 3802, 142, 21, 23, 20, 1700, 17, 869, 1009, 2249, 0, 99999,
    ];
    let mut found = Vec::new();
    for round in 0..3000 {
        let input = random_input(&mut rng);
        let masker = &maskers[round % maskers.len()];
        masker.scanner().scan(&input, &mut found);
        let mut end = 0;
        for f in &found {
            assert!(
                f.start >= end && f.start < f.end && f.end <= input.len(),
                "{input:?}: {found:?}"
            );
            end = f.end;
        }
        let mut scratch = Scratch::default();
        let mut tally = Tally::default();
        let _ = masker.mask_text(&input, &mut scratch, &mut tally);
        let _ = masker.mask_number(&input, &mut scratch, &mut tally);
        let _ = masker.scanner().scan_json(&input, &mut found);

        // The same pieces inside a JSON string, which must stay JSON.
        let doc = serde_json::json!({ "v": String::from_utf8_lossy(&input), "password": "hunter2hunter2", "n": [4111111111111111u64] })
            .to_string();
        if let Masked::Replaced(out) = masker.mask_json(doc.as_bytes(), &mut scratch, &mut tally) {
            assert!(
                serde_json::from_slice::<serde_json::Value>(&out).is_ok(),
                "{doc} -> {}",
                String::from_utf8_lossy(&out)
            );
        }

        let mut rows = RowMasker::new(masker.clone());
        for format in [0i16, 1] {
            let columns: Vec<Column> = oids
                .iter()
                .map(|&type_oid| Column {
                    name: "c".into(),
                    type_oid,
                    format,
                })
                .collect();
            rows.set_columns(&columns);
            let values: Vec<&[u8]> = oids.iter().map(|_| input.as_slice()).collect();
            if let RowOutcome::Rewritten(out) = rows.mask_row(&data_row(&values)) {
                assert!(well_formed_row(&out), "{input:?}");
            }
        }
        let mut garbage = vec![b'D'];
        garbage.extend_from_slice(&(4 + input.len() as u32).to_be_bytes());
        garbage.extend_from_slice(&input);
        if let RowOutcome::Rewritten(out) = rows.mask_row(&Bytes::from(garbage)) {
            assert!(well_formed_row(&out));
        }
        rows.start_copy(round % 2 == 0);
        let mut copy = vec![b'd'];
        copy.extend_from_slice(&(4 + input.len() as u32).to_be_bytes());
        copy.extend_from_slice(&input);
        let _ = rows.mask_copy_data(&Bytes::from(copy));
    }
}
