//! `load-test-review [N]`: prints the AdmissionReview the webhook load test sends
//! (`bench/run.sh`): the shared Flyte task pod with N mixed secret requests (default 5), from
//! [`flyte_secret_testkit::fixtures::load_test_review`], the same body the webhook's criterion
//! benches time.

use clap::Parser;
use flyte_secret_testkit::fixtures;

#[derive(Parser)]
#[command(
    name = "load-test-review",
    about = "Prints the webhook load test's AdmissionReview (test support)"
)]
struct Cli {
    /// Secret requests on the pod.
    #[arg(default_value_t = 5)]
    secrets: usize,
}

fn main() {
    let cli = Cli::parse();
    println!("{}", fixtures::load_test_review(cli.secrets));
}
