//! The tests and intervals against scipy's values on committed fixtures (small samples, ties,
//! unequal sizes, large samples), made by fixtures/make_scipy_fixtures.py.

use analysis::stats;
use serde::Deserialize;

#[derive(Deserialize)]
struct Result {
    statistic: f64,
    p_value: f64,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    a: Vec<f64>,
    b: Vec<f64>,
    mann_whitney_u: Result,
    welch_t: Result,
    t_interval_a_95: [f64; 2],
}

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

fn cases() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/scipy-tests.json");
    serde_json::from_str::<Fixture>(&std::fs::read_to_string(path).unwrap()).unwrap().cases
}

fn close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= 1e-9 + 1e-7 * want.abs(), "{what}: got {got}, scipy {want}");
}

#[test]
fn mann_whitney_matches_scipy_including_the_case_statrs_gets_wrong() {
    for c in cases() {
        let r = stats::mann_whitney_u(&c.a, &c.b).unwrap();
        close(r.statistic, c.mann_whitney_u.statistic, &format!("{} U", c.name));
        close(r.p_value, c.mann_whitney_u.p_value, &format!("{} p", c.name));
    }
}

#[test]
fn welch_t_matches_scipy() {
    for c in cases() {
        let r = stats::welch_t(&c.a, &c.b).unwrap();
        close(r.statistic, c.welch_t.statistic, &format!("{} t", c.name));
        close(r.p_value, c.welch_t.p_value, &format!("{} p", c.name));
    }
}

#[test]
fn t_interval_of_the_mean_matches_scipy() {
    for c in cases() {
        let (lo, hi) = stats::t_interval(&c.a, 0.95).unwrap();
        close(lo, c.t_interval_a_95[0], &format!("{} lower", c.name));
        close(hi, c.t_interval_a_95[1], &format!("{} upper", c.name));
    }
}
