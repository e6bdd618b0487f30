//! A recorded decode step's output as read back on the host, and the check that a replay
//! reproduced what the last ordinary step gave ([`crate::decode_graph`]). Pure host code,
//! outside the `cube` feature so the CPU suite tests it.
#![cfg_attr(not(feature = "cube"), allow(dead_code))]

/// A step's output, read back.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum HostOutput {
    Ids(Vec<u32>),
    /// Per sequence: `(id, logit)` candidates, largest first for top-k.
    Candidates(Vec<Vec<(u32, f32)>>),
}

/// A correct replay gives the last ordinary run's output: the same ids, logits equal to
/// rounding (the same kernels on the same inputs).
pub(crate) fn same(a: &HostOutput, b: &HostOutput) -> bool {
    match (a, b) {
        (HostOutput::Ids(x), HostOutput::Ids(y)) => x == y,
        (HostOutput::Candidates(x), HostOutput::Candidates(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(r, s)| r.len() == s.len() && r.iter().zip(s).all(|(&(i, u), &(j, w))| i == j && close(u, w)))
        }
        _ => false,
    }
}

/// Two logits equal to rounding. Equal values first: a suppressed EOS is `-inf` in both, and
/// `-inf - -inf` is NaN, which once made every all-logits recording (top-k 0 with EOS
/// suppressed) fail its check and fall back to ordinary steps (H100, 2026-11-26). The
/// tolerance applies to finite values only (relative to `inf` it would accept anything).
fn close(u: f32, w: f32) -> bool {
    u == w || (u.is_finite() && w.is_finite() && (u - w).abs() <= 1e-3 + 1e-2 * u.abs())
}

#[cfg(test)]
mod tests {
    use super::{HostOutput, same};

    #[test]
    fn replay_check_accepts_rounding_and_suppressed_eos_but_not_other_ids() {
        let row = |eos: f32, x: f32| HostOutput::Candidates(vec![vec![(0, 1.5), (1, eos), (2, x)]]);
        // A suppressed EOS is -inf in both outputs: the same logits.
        assert!(same(&row(f32::NEG_INFINITY, 2.0), &row(f32::NEG_INFINITY, 2.0 + 1e-3)));
        // A finite logit against -inf, or beyond rounding, is not.
        assert!(!same(&row(f32::NEG_INFINITY, 2.0), &row(0.0, 2.0)));
        assert!(!same(&row(0.0, 2.0), &row(f32::NEG_INFINITY, 2.0)));
        assert!(!same(&row(f32::NEG_INFINITY, 2.0), &row(f32::NEG_INFINITY, 2.1)));
        // NaN never matches.
        assert!(!same(&row(f32::NAN, 2.0), &row(f32::NAN, 2.0)));
        // Candidates with other ids, or other greedy ids, differ.
        let other = HostOutput::Candidates(vec![vec![(0, 1.5), (3, f32::NEG_INFINITY), (2, 2.0)]]);
        assert!(!same(&row(f32::NEG_INFINITY, 2.0), &other));
        assert!(same(&HostOutput::Ids(vec![4, 7]), &HostOutput::Ids(vec![4, 7])));
        assert!(!same(&HostOutput::Ids(vec![4, 7]), &HostOutput::Ids(vec![4, 8])));
    }
}
