//! Which frames of a clip the model sees (spec §2.3): `np.linspace(0, n − 1, K).astype(int)`.

use crate::error::{Result, VideoError};

/// The K frame indices upstream picks from `n` frames: `linspace(0, n − 1, K)` truncated
/// toward zero (numpy computes `i · step` with `step = (n − 1) / (K − 1)` and sets the last
/// value to exactly `n − 1`). With `n ≤ K` every frame is used once instead (the original
/// would repeat frames; our model accepts any number of frames).
pub fn select_frames(n: usize, k: usize) -> Result<Vec<usize>> {
    if k == 0 {
        return Err(VideoError::ZeroFrames);
    }
    if n == 0 {
        return Err(VideoError::NoFrames);
    }
    if n <= k {
        return Ok((0..n).collect());
    }
    Ok(linspace_indices(n, k))
}

/// `np.linspace(0, n − 1, k).astype(int)` exactly, duplicates included.
pub fn linspace_indices(n: usize, k: usize) -> Vec<usize> {
    if k == 1 {
        return vec![0];
    }
    let stop = (n - 1) as f64;
    let step = stop / (k - 1) as f64;
    (0..k)
        .map(|i| if i == k - 1 { n - 1 } else { (i as f64 * step) as usize })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_original_rule() {
        assert_eq!(select_frames(30, 8).unwrap(), vec![0, 4, 8, 12, 16, 20, 24, 29]);
        assert_eq!(select_frames(8, 8).unwrap(), (0..8).collect::<Vec<_>>());
        assert_eq!(select_frames(100, 8).unwrap(), vec![0, 14, 28, 42, 56, 70, 84, 99]);
        assert_eq!(select_frames(9, 8).unwrap(), vec![0, 1, 2, 3, 4, 5, 6, 8]);
        assert_eq!(select_frames(5, 1).unwrap(), vec![0]);
        assert_eq!(select_frames(3, 8).unwrap(), vec![0, 1, 2]);
        // numpy's own result with repeats when n < K.
        assert_eq!(linspace_indices(3, 8), vec![0, 0, 0, 0, 1, 1, 1, 2]);
    }

    #[test]
    fn zero_is_an_error() {
        assert!(matches!(select_frames(10, 0), Err(VideoError::ZeroFrames)));
        assert!(matches!(select_frames(0, 8), Err(VideoError::NoFrames)));
    }
}
