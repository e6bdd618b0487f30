//! Token selection as Hugging Face `generate` does it: greedy, or temperature → top-k →
//! top-p (nucleus) → sample, with a seeded RNG.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Sampling settings. DAM's defaults: temperature 0.2, top-k 50 (Hugging Face's implicit
/// default whenever sampling), top-p 0.5.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    /// Must be > 0; 0 means greedy (use [`Sampling::Greedy`]).
    pub temperature: f32,
    /// Keep the k most likely tokens; 0 disables the filter.
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p`; 1.0 disables it.
    pub top_p: f32,
    /// RNG seed: the same seed gives the same text.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.2,
            top_k: 50,
            top_p: 0.5,
            seed: 0,
        }
    }
}

/// How the next token is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampling {
    /// Argmax (ties go to the lowest id, like `torch.argmax`).
    Greedy,
    /// Temperature, then top-k, then top-p, drawn with a seeded generator.
    Sample(SamplingParams),
}

impl Default for Sampling {
    /// The original's defaults (temperature 0.2, top-k 50, top-p 0.5).
    fn default() -> Self {
        Sampling::Sample(SamplingParams::default())
    }
}

impl Sampling {
    /// Upstream's rule: `do_sample = temperature > 0`.
    pub fn from_temperature(temperature: f32, top_k: usize, top_p: f32, seed: u64) -> Self {
        if temperature > 0.0 {
            Sampling::Sample(SamplingParams {
                temperature,
                top_k,
                top_p,
                seed,
            })
        } else {
            Sampling::Greedy
        }
    }

    /// Checks ranges: temperature ≥ 0, 0 < top_p ≤ 1.
    pub fn validate(&self) -> Result<(), String> {
        if let Sampling::Sample(p) = self {
            if !(p.temperature.is_finite() && p.temperature > 0.0) {
                return Err(format!("temperature must be > 0 to sample, got {}", p.temperature));
            }
            if !(p.top_p > 0.0 && p.top_p <= 1.0) {
                return Err(format!("top_p must be in (0, 1], got {}", p.top_p));
            }
        }
        Ok(())
    }
}

/// Applies top-p to candidates (token, scaled logit) that already passed top-k, returning the
/// survivors with their renormalised probabilities, most likely first.
///
/// As `TopPLogitsWarper`: sort ascending, softmax, cumulative sum; drop tokens whose
/// cumulative probability is ≤ 1 − top_p, always keeping the most likely one.
pub fn nucleus(candidates: &[(u32, f32)], top_p: f32) -> Vec<(u32, f32)> {
    let mut sorted: Vec<(u32, f32)> = candidates.to_vec();
    // Ascending by logit; ties by ascending id, as a stable `torch.sort` over vocab order.
    sorted.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    let probs = softmax(&sorted);
    let mut keep = vec![true; sorted.len()];
    if top_p < 1.0 {
        let mut cum = 0.0f32;
        let last = sorted.len().saturating_sub(1);
        for (i, p) in probs.iter().enumerate() {
            cum += p;
            if cum <= 1.0 - top_p && i != last {
                keep[i] = false;
            }
        }
    }
    let kept: Vec<(u32, f32)> = sorted
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(c, _)| c)
        .collect();
    let probs = softmax(&kept);
    let mut out: Vec<(u32, f32)> = kept.iter().map(|c| c.0).zip(probs).collect();
    out.reverse();
    out
}

fn softmax(c: &[(u32, f32)]) -> Vec<f32> {
    let max = c.iter().map(|x| x.1).fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = c.iter().map(|x| (x.1 - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Top-k on a full row of logits (host side), as `TopKLogitsWarper`: everything strictly below
/// the k-th largest value is dropped (ties with it are kept).
pub fn top_k(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let all = || logits.iter().enumerate().map(|(i, &v)| (i as u32, v)).collect();
    if k == 0 || k >= logits.len() {
        return all();
    }
    let mut values: Vec<f32> = logits.to_vec();
    let (_, kth, _) = values.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    let kth = *kth;
    logits
        .iter()
        .enumerate()
        .filter(|(_, v)| **v >= kth)
        .map(|(i, &v)| (i as u32, v))
        .collect()
}

/// A seeded sampler for one sequence.
#[derive(Clone, Debug)]
pub struct Sampler {
    params: SamplingParams,
    rng: ChaCha8Rng,
}

impl Sampler {
    /// A sampler whose generator is seeded with `params.seed`.
    pub fn new(params: SamplingParams) -> Self {
        Self {
            params,
            rng: ChaCha8Rng::seed_from_u64(params.seed),
        }
    }

    /// The settings it samples with.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Picks a token from top-k candidates `(token, raw logit)`.
    pub fn sample(&mut self, candidates: &[(u32, f32)]) -> u32 {
        let t = self.params.temperature;
        let scaled: Vec<(u32, f32)> = candidates.iter().map(|&(i, v)| (i, v / t)).collect();
        let dist = nucleus(&scaled, self.params.top_p);
        let u: f32 = self.rng.random();
        let mut acc = 0.0;
        for &(id, p) in &dist {
            acc += p;
            if u < acc {
                return id;
            }
        }
        dist.last().map(|d| d.0).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_ties_with_the_kth_value() {
        let logits = [1.0, 5.0, 3.0, 3.0, -2.0, 4.0];
        let mut kept: Vec<u32> = top_k(&logits, 3).into_iter().map(|c| c.0).collect();
        kept.sort();
        // 5 and 4, then 3 twice (tie at the 3rd value).
        assert_eq!(kept, vec![1, 2, 3, 5]);
        assert_eq!(top_k(&logits, 0).len(), 6);
    }

    #[test]
    fn nucleus_matches_hugging_face_rule() {
        // Probabilities 0.5, 0.25, 0.125, 0.125 (logits ln p).
        let c: Vec<(u32, f32)> = [(7u32, 0.5f32), (3, 0.25), (9, 0.125), (1, 0.125)]
            .iter()
            .map(|&(i, p)| (i, p.ln()))
            .collect();
        // top_p 0.5: ascending cumsum 0.125, 0.25, 0.5, 1.0; removed where <= 0.5 -> only 7 kept.
        let d = nucleus(&c, 0.5);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].0, 7);
        assert!((d[0].1 - 1.0).abs() < 1e-6);
        // top_p 0.8: removed where cumsum <= 0.2 -> only the first 0.125 token (id 1, the lower id of the tie).
        let d = nucleus(&c, 0.8);
        let ids: Vec<u32> = d.iter().map(|x| x.0).collect();
        assert_eq!(ids, vec![7, 3, 9]);
        let total: f32 = d.iter().map(|x| x.1).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert!((d[0].1 - 0.5 / 0.875).abs() < 1e-6);
        // top_p 1.0 keeps everything.
        assert_eq!(nucleus(&c, 1.0).len(), 4);
    }

    #[test]
    fn seeded_sampling_is_reproducible_and_follows_the_distribution() {
        let c: Vec<(u32, f32)> = (0..10).map(|i| (i, i as f32 * 0.3)).collect();
        let params = SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            seed: 42,
        };
        let draw = |seed| {
            let mut s = Sampler::new(SamplingParams { seed, ..params });
            (0..200).map(|_| s.sample(&c)).collect::<Vec<_>>()
        };
        assert_eq!(draw(42), draw(42));
        assert_ne!(draw(42), draw(43));
        // The most likely token is drawn most often.
        let d = draw(7);
        let count = |id| d.iter().filter(|&&x| x == id).count();
        assert!(count(9) > count(0));
    }

    #[test]
    fn low_temperature_concentrates_on_the_argmax() {
        let c: Vec<(u32, f32)> = vec![(0, 1.0), (1, 1.5), (2, 0.5)];
        let mut s = Sampler::new(SamplingParams {
            temperature: 0.01,
            top_k: 0,
            top_p: 1.0,
            seed: 1,
        });
        assert!((0..50).all(|_| s.sample(&c) == 1));
    }

    #[test]
    fn validation() {
        assert!(Sampling::from_temperature(0.0, 50, 0.5, 0) == Sampling::Greedy);
        assert!(Sampling::from_temperature(0.2, 50, 1.5, 0).validate().is_err());
        assert!(Sampling::default().validate().is_ok());
    }
}
