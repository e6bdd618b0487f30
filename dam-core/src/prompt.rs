//! The conversation template (`conv_mode = "v1"`, vicuna v1) and DAM's queries (spec §6.3).

use crate::error::{CoreError, Result};

/// The placeholder that marks where an image's (or frame's) tokens go.
pub const IMAGE_PLACEHOLDER: &str = "<image>";

/// System text of the `v1` template.
pub const SYSTEM_V1: &str = "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions.";

/// DAM-3B's default query (CLI, demos and DLC-Bench).
pub const DEFAULT_IMAGE_QUERY: &str = "<image>\nDescribe the masked region in detail.";

/// DAM-3B-Video's video question, after the `Video: <image>…` prefix.
pub const VIDEO_QUESTION: &str = "Given the video in the form of a sequence of frames above, describe the object in the masked region in the video in detail.";

/// DAM-3B-Video's single-image question used on DLC-Bench (`--query-key joint`).
pub const JOINT_IMAGE_QUESTION: &str = "Given the image above, describe the object in the masked region.";

/// How long a description to ask for. The released DAM-3B was trained with prompt
/// augmentation, so these instructions steer its length (project page examples).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Granularity {
    /// `Describe the masked region in detail.` (the upstream default).
    #[default]
    Detailed,
    /// `Provide a brief description of the masked region.`
    Brief,
    /// `Provide a highly detailed description of the masked region.`
    HighlyDetailed,
}

impl Granularity {
    /// The instruction text (without the image placeholder).
    pub fn instruction(self) -> &'static str {
        match self {
            Granularity::Detailed => "Describe the masked region in detail.",
            Granularity::Brief => "Provide a brief description of the masked region.",
            Granularity::HighlyDetailed => "Provide a highly detailed description of the masked region.",
        }
    }

    /// DAM-3B's query: `<image>\n{instruction}`.
    pub fn image_query(self) -> String {
        format!("{IMAGE_PLACEHOLDER}\n{}", self.instruction())
    }
}

/// DAM-3B-Video's query for `frames` frames: `Video: <image>…<image>\n{question}`.
pub fn video_query(frames: usize, question: &str) -> String {
    format!("Video: {}\n{question}", IMAGE_PLACEHOLDER.repeat(frames))
}

/// DAM-3B-Video's single-image form: `Image: <image>\n{question}`.
pub fn joint_image_query(question: &str) -> String {
    format!("Image: {IMAGE_PLACEHOLDER}\n{question}")
}

/// Number of `<image>` placeholders in a query.
pub fn count_placeholders(query: &str) -> usize {
    query.matches(IMAGE_PLACEHOLDER).count()
}

/// Checks that a query has exactly one placeholder per image or frame.
pub fn check_query(query: &str, images: usize) -> Result<()> {
    let found = count_placeholders(query);
    if found == 0 {
        return Err(CoreError::BadPrompt(format!(
            "the query has no {IMAGE_PLACEHOLDER} placeholder; write it where the image goes, e.g. {DEFAULT_IMAGE_QUERY:?}"
        )));
    }
    if found != images {
        return Err(CoreError::BadPrompt(format!(
            "the query has {found} {IMAGE_PLACEHOLDER} placeholder(s) but {images} image(s)/frame(s) were given"
        )));
    }
    Ok(())
}

/// Renders one user turn and an open assistant turn with the `v1` template:
/// `{system} USER: {query} ASSISTANT:` (style TWO, `sep = " "`).
pub fn render_v1(query: &str) -> String {
    format!("{SYSTEM_V1} USER: {query} ASSISTANT:")
}

/// [`check_query`] then [`render_v1`].
pub fn build_prompt(query: &str, images: usize) -> Result<String> {
    check_query(query, images)?;
    Ok(render_v1(query))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_dam_3b_prompt() {
        assert_eq!(
            build_prompt(DEFAULT_IMAGE_QUERY, 1).unwrap(),
            "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions. USER: <image>\nDescribe the masked region in detail. ASSISTANT:"
        );
        assert_eq!(Granularity::default().image_query(), DEFAULT_IMAGE_QUERY);
    }

    #[test]
    fn video_and_joint_queries() {
        assert_eq!(video_query(2, "Q?"), "Video: <image><image>\nQ?");
        assert_eq!(
            joint_image_query(JOINT_IMAGE_QUESTION),
            "Image: <image>\nGiven the image above, describe the object in the masked region."
        );
        assert_eq!(count_placeholders(&video_query(8, VIDEO_QUESTION)), 8);
    }

    #[test]
    fn placeholder_errors() {
        assert!(matches!(build_prompt("Describe it.", 1), Err(CoreError::BadPrompt(_))));
        assert!(matches!(
            build_prompt("<image><image>\nx", 1),
            Err(CoreError::BadPrompt(_))
        ));
        assert!(matches!(
            build_prompt(DEFAULT_IMAGE_QUERY, 3),
            Err(CoreError::BadPrompt(_))
        ));
    }
}
