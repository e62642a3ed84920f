//! `siteward bench-crypto`: envelope-encryption throughput for a screenshot-sized blob (sealing
//! and opening, AES-256-GCM with the blob header and object key as associated data), beside
//! SHA-256 over the same bytes in the same run as the baseline.

use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use sha2::{Digest, Sha256};

use crate::storage::envelope::{open_blob, seal_blob};
use crate::storage::{ObjectKey, Uploader};

#[derive(Debug, Args)]
pub struct BenchCryptoArgs {
    /// Blob size in MiB.
    #[arg(long, default_value_t = 5)]
    pub mib: usize,
    /// Rounds per measurement (the median is printed).
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
}

fn median_mib_per_second(bytes: usize, rounds: usize, mut work: impl FnMut()) -> f64 {
    let mut speeds: Vec<f64> = (0..rounds.max(1))
        .map(|_| {
            let started = Instant::now();
            work();
            bytes as f64 / (1024.0 * 1024.0) / started.elapsed().as_secs_f64()
        })
        .collect();
    speeds.sort_by(f64::total_cmp);
    speeds[speeds.len() / 2]
}

pub fn run(args: BenchCryptoArgs) -> ExitCode {
    let bytes = args.mib.max(1) * 1024 * 1024;
    // Screenshot-like content: not compressible to nothing, not random either.
    let blob: Vec<u8> = (0..bytes).map(|i| ((i * 31) ^ (i >> 7)) as u8).collect();
    let data_key = crate::crypto::random_bytes::<32>();
    let key = match ObjectKey::snapshot_artifact(1, 1, Uploader::Attempt(1), "fullpage.png") {
        Ok(key) => key,
        Err(error) => return super::fail(error),
    };
    let sealed = seal_blob(1, &data_key, &key, &blob);
    let baseline = median_mib_per_second(bytes, args.rounds, || {
        std::hint::black_box(Sha256::digest(&blob));
    });
    let seal = median_mib_per_second(bytes, args.rounds, || {
        std::hint::black_box(seal_blob(1, &data_key, &key, &blob));
    });
    let open = median_mib_per_second(bytes, args.rounds, || {
        std::hint::black_box(open_blob(&data_key, &key, &sealed).is_ok());
    });
    println!(
        "envelope encryption, {} MiB blob, median of {} rounds",
        args.mib.max(1),
        args.rounds.max(1)
    );
    println!(
        "{:<28} {:>10.0} MiB/s   (baseline)",
        "SHA-256 of the same bytes", baseline
    );
    println!(
        "{:<28} {:>10.0} MiB/s   {:.2}x baseline",
        "seal (AES-256-GCM)",
        seal,
        seal / baseline
    );
    println!(
        "{:<28} {:>10.0} MiB/s   {:.2}x baseline",
        "open (AES-256-GCM)",
        open,
        open / baseline
    );
    super::print_figure("crypto.seal_vs_sha256", seal / baseline);
    super::print_figure("crypto.open_vs_sha256", open / baseline);
    ExitCode::SUCCESS
}
