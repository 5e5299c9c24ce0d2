//! The scanner on the generated inputs of `mask.rs`, for counting its
//! instructions: the machine this project measures on changes speed from
//! hour to hour, and a count of instructions does not. Run by
//! `benches/scan-instructions.sh`, which runs it under valgrind twice
//! and reports the instructions per byte of the difference.
//!
//!     scan_instructions INPUT PASSES
//!
//! scans INPUT (`prose`, `table_data`, `names`, `digit_groups`) once to
//! warm up and then PASSES times, with the standard detectors.

#[path = "support/inputs.rs"]
mod inputs;

use airlock::mask::{Detectors, Scanner};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, passes] = &args[..] else {
        eprintln!("usage: scan_instructions INPUT PASSES");
        std::process::exit(2);
    };
    let passes: usize = passes.parse().expect("PASSES is a number");
    let Some((_, cells)) = inputs::inputs().into_iter().find(|(name, _)| name == input) else {
        eprintln!("no input named {input}");
        std::process::exit(2);
    };
    let scanner = Scanner::new(&Detectors::standard());
    let mut found = Vec::new();
    let mut findings = 0;
    for pass in 0..=passes {
        for cell in &cells {
            scanner.scan(std::hint::black_box(cell.as_bytes()), &mut found);
            if pass == 0 {
                findings += found.len();
            }
        }
    }
    println!("{} bytes, {findings} findings", inputs::bytes_of(&cells));
}
