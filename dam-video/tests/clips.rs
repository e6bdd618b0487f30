//! Building clips from frame folders and masks; errors for bad inputs.

use dam_core::Mask;
use dam_core::testing::{dam_case_dir, scratch_dir};
use dam_video::source::{read_frame, read_frame_folder, read_mask_folder};
use dam_video::{Clip, ClipOptions, MaskPropagator, VideoError};
use image::RgbImage;

fn frames(n: usize) -> Vec<RgbImage> {
    (0..n)
        .map(|i| RgbImage::from_pixel(32, 24, image::Rgb([i as u8, 0, 0])))
        .collect()
}

fn mask() -> Mask {
    Mask::from_rect(32, 24, 4, 4, 12, 10).unwrap()
}

fn options(k: usize) -> ClipOptions {
    ClipOptions {
        num_frames: k,
        skip_empty: false,
    }
}

#[test]
fn selects_frames_and_their_masks_like_the_original() {
    let clip = Clip::new(frames(30), vec![mask(); 30], options(8)).unwrap();
    assert_eq!(clip.indices, vec![0, 4, 8, 12, 16, 20, 24, 29]);
    // The frames kept are the selected ones (frame i has red value i).
    let reds: Vec<u8> = clip.frames.iter().map(|f| f.get_pixel(0, 0).0[0]).collect();
    assert_eq!(reds, vec![0, 4, 8, 12, 16, 20, 24, 29]);
    // One mask per selected frame works too.
    let clip = Clip::new(frames(30), vec![mask(); 8], options(8)).unwrap();
    assert_eq!(clip.len(), 8);
    // Fewer frames than K: all of them, once.
    assert_eq!(
        Clip::new(frames(3), vec![mask(); 3], options(8)).unwrap().indices,
        vec![0, 1, 2]
    );
}

#[test]
fn bad_clips_are_errors() {
    assert!(matches!(
        Clip::new(frames(10), vec![mask(); 5], options(8)),
        Err(VideoError::CountMismatch { frames: 10, masks: 5 })
    ));
    assert!(matches!(
        Clip::new(vec![], vec![], options(8)),
        Err(VideoError::NoFrames)
    ));
    assert!(matches!(
        Clip::new(frames(3), vec![mask(); 3], options(0)),
        Err(VideoError::ZeroFrames)
    ));
    let mut odd = frames(3);
    odd[2] = RgbImage::new(10, 10);
    assert!(matches!(
        Clip::new(odd, vec![mask(); 3], options(8)),
        Err(VideoError::FrameSizeMismatch { index: 2, .. })
    ));
    let wrong_mask = Mask::from_rect(10, 10, 1, 1, 3, 3).unwrap();
    assert!(matches!(
        Clip::new(frames(2), vec![mask(), wrong_mask], options(8)),
        Err(VideoError::Core(dam_core::CoreError::MaskSizeMismatch { .. }))
    ));
    let empty = Mask::from_vec(32, 24, vec![false; 32 * 24]).unwrap();
    let masks = vec![mask(), empty.clone(), mask()];
    assert!(matches!(
        Clip::new(frames(3), masks.clone(), options(8)),
        Err(VideoError::EmptyFrameMask { index: 1 })
    ));
    let skip = ClipOptions {
        num_frames: 8,
        skip_empty: true,
    };
    assert_eq!(Clip::new(frames(3), masks, skip).unwrap().indices, vec![0, 2]);
    assert!(matches!(
        Clip::new(frames(2), vec![empty.clone(), empty], skip),
        Err(VideoError::NoVisibleFrame)
    ));
}

struct Repeat;

impl MaskPropagator for Repeat {
    fn propagate(&self, frames: &[RgbImage], _annotated: usize, mask: &Mask) -> dam_video::Result<Vec<Mask>> {
        Ok(vec![mask.clone(); frames.len()])
    }
}

#[test]
fn one_annotated_frame_needs_a_propagator() {
    let err = Clip::from_annotation(frames(5), 0, mask(), None, options(8)).unwrap_err();
    assert!(matches!(err, VideoError::MissingMask { index: 1 }), "{err}");
    assert!(err.to_string().contains("propagator"));
    let clip = Clip::from_annotation(frames(5), 0, mask(), Some(&Repeat), options(8)).unwrap();
    assert_eq!(clip.masks.len(), 5);
}

#[test]
fn folders_are_read_in_name_order_and_bad_files_are_errors() {
    let case = dam_case_dir("video");
    let dir = scratch_dir("video-frames");
    let (fdir, mdir) = (dir.join("frames"), dir.join("masks"));
    std::fs::create_dir_all(&fdir).unwrap();
    std::fs::create_dir_all(&mdir).unwrap();
    for k in 0..3 {
        std::fs::copy(case.join(format!("image_{k}.png")), fdir.join(format!("f{k:03}.png"))).unwrap();
        std::fs::copy(case.join(format!("mask_{k}.png")), mdir.join(format!("m{k:03}.png"))).unwrap();
    }
    std::fs::write(fdir.join("notes.txt"), "not a frame").unwrap();
    let frames = read_frame_folder(&fdir).unwrap();
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[1], image::open(case.join("image_1.png")).unwrap().to_rgb8());
    assert_eq!(
        read_mask_folder(&mdir).unwrap()[2],
        Mask::open(case.join("mask_2.png")).unwrap()
    );

    std::fs::write(fdir.join("f999.png"), b"not a png").unwrap();
    assert!(matches!(
        read_frame_folder(&fdir),
        Err(VideoError::UnreadableFrame { .. })
    ));
    assert!(matches!(
        read_frame(&dir.join("missing.png")),
        Err(VideoError::UnreadableFrame { .. })
    ));
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(matches!(read_frame_folder(&empty), Err(VideoError::Folder { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// With the `video-file` feature and FFmpeg installed: a video made from the fixture frames
/// decodes back to frames of the right size and count.
#[cfg(feature = "video-file")]
#[test]
fn video_files_decode_through_ffmpeg() {
    use dam_video::source::video_file;
    if std::process::Command::new("ffmpeg").arg("-version").output().is_err() {
        eprintln!("skipped: ffmpeg is not installed");
        return;
    }
    let case = dam_case_dir("video");
    let dir = scratch_dir("video-file");
    let video = dir.join("clip.mkv");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-framerate", "5", "-i"])
        .arg(case.join("image_%d.png"))
        .args(["-c:v", "ffv1"])
        .arg(&video)
        .status()
        .unwrap();
    assert!(status.success());
    let (w, h, n) = video_file::info(&video).unwrap();
    assert_eq!((w, h, n), (128, 96, 3));
    let frames = video_file::read_frames(&video, &[0, 2]).unwrap();
    assert_eq!(frames.len(), 2);
    // Lossless codec: frames come back exactly.
    assert_eq!(frames[1], image::open(case.join("image_2.png")).unwrap().to_rgb8());
    assert!(matches!(
        video_file::read_frames(&video, &[7]),
        Err(VideoError::Decode(_))
    ));
    assert!(matches!(
        video_file::info(&dir.join("none.mp4")),
        Err(VideoError::Decode(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
