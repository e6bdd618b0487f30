//! Scribble sampling: numpy legacy `seed(0); choice(N, min(N, 8), replace=False)`.

use dam_core::Mask;
use dam_core::testing::fixtures_dir;
use dam_vision::sam::{
    LegacyMt19937, numpy_choice_without_replacement, sample_scribble_indices, sample_scribble_points,
};

#[test]
fn mt19937_matches_the_reference_generator() {
    // The reference implementation's default seed 5489 starts with 3499211612.
    let mut rng = LegacyMt19937::new(5489);
    assert_eq!(rng.next_u32(), 3_499_211_612);
    // The first raw 32-bit output of numpy's `RandomState(0)` (`init_genrand(0)`).
    let mut rng = LegacyMt19937::new(0);
    assert_eq!(rng.next_u32(), 2_357_136_044);
}

#[test]
fn choice_matches_numpy_for_every_listed_n() {
    let path = fixtures_dir().join("sam-tiny/scribble_rng.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).expect("rng json")).expect("json");
    let vectors = v["vectors"].as_array().expect("vectors");
    assert!(vectors.len() >= 11);
    for entry in vectors {
        let n = entry["n"].as_u64().unwrap() as usize;
        let want: Vec<usize> = entry["indices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(sample_scribble_indices(n, 0), want, "n = {n}");
    }
}

#[test]
fn choice_edge_cases() {
    assert!(numpy_choice_without_replacement(0, 8, 0).is_empty());
    assert_eq!(numpy_choice_without_replacement(1, 8, 0), vec![0]);
    let all = numpy_choice_without_replacement(50, 50, 3);
    let mut sorted = all.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..50).collect::<Vec<_>>(), "a permutation");
}

#[test]
fn scribble_points_are_row_major_foreground_pixels() {
    let mask = Mask::from_vec(
        4,
        3,
        vec![
            false, true, false, false, //
            false, false, true, true, //
            true, false, false, false,
        ],
    )
    .unwrap();
    let fg = mask.foreground_pixels();
    let points = sample_scribble_points(&mask, 0);
    let idx = sample_scribble_indices(4, 0);
    assert_eq!(points.len(), 4);
    for (p, i) in points.iter().zip(idx) {
        assert_eq!(*p, (fg[i].0 as f64, fg[i].1 as f64));
    }
    let empty = Mask::from_vec(2, 2, vec![false; 4]).unwrap();
    assert!(sample_scribble_points(&empty, 0).is_empty());
}
