//! Prompt token ids. Every engine gets the same ids for the same (length, seed), so no engine's
//! tokenizer is timed or trusted; they are drawn from the ordinary (non-special) vocabulary after
//! the beginning-of-text token, which is what a chat prompt looks like to the model's compute.

/// Ordinary tokens of the Llama-3 vocabulary; special tokens start here.
const ORDINARY: u64 = 128_000;
pub const BOS: u32 = 128_000;

pub fn prompt_tokens(len: usize, seed: u64, vocab_size: usize) -> Vec<u32> {
    let range = ORDINARY.min(vocab_size as u64);
    let mut rng = seeded_rng::SplitMix64(seed ^ (len as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let bos = if (BOS as usize) < vocab_size { BOS } else { 0 };
    std::iter::once(bos).chain((1..len).map(|_| (rng.next_u64() % range) as u32)).take(len).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_start_with_bos_have_the_length_and_repeat_per_seed() {
        let p = prompt_tokens(50, 3, 128_256);
        assert_eq!(p.len(), 50);
        assert_eq!(p[0], BOS);
        assert!(p[1..].iter().all(|&t| t < 128_000));
        assert_eq!(p, prompt_tokens(50, 3, 128_256));
        assert_ne!(p, prompt_tokens(50, 4, 128_256));
        assert_eq!(prompt_tokens(1, 0, 128_256), vec![BOS]);
        // Pinned: runs are compared across versions, so the ids for a seed must never change.
        assert_eq!(prompt_tokens(6, 3, 128_256), vec![BOS, 44965, 60516, 68740, 54812, 26389]);
    }
}
