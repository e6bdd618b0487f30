//! Where frames and masks come from: a folder of images (sorted by file name), a list of
//! images in memory, or a video file decoded by the `ffmpeg` program (feature `video-file`).

use std::path::{Path, PathBuf};

use dam_core::Mask;
use image::RgbImage;

use crate::error::{Result, VideoError};

const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "webp", "tif", "tiff"];

/// Image files of a folder, sorted by file name (use zero-padded names: `frame_0002.png`
/// sorts before `frame_0010.png`, `frame_2.png` does not).
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let folder_err = |reason: String| VideoError::Folder {
        path: dir.to_path_buf(),
        reason,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| folder_err(e.to_string()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    if paths.is_empty() {
        return Err(folder_err("no image files (png, jpg, jpeg, bmp, webp, tif)".into()));
    }
    paths.sort();
    Ok(paths)
}

/// Reads one frame as 8-bit RGB, exactly as the original's Pillow does
/// ([`dam_core::image_io`]).
pub fn read_frame(path: &Path) -> Result<RgbImage> {
    dam_core::open_rgb(path).map_err(|e| VideoError::UnreadableFrame {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Every frame of a folder, in file-name order.
pub fn read_frame_folder(dir: &Path) -> Result<Vec<RgbImage>> {
    list_images(dir)?.iter().map(|p| read_frame(p)).collect()
}

/// Every mask of a folder (0/255 PNGs; any non-zero pixel is foreground), in file-name order.
pub fn read_mask_folder(dir: &Path) -> Result<Vec<Mask>> {
    list_images(dir)?
        .iter()
        .map(|p| Mask::open(p).map_err(VideoError::from))
        .collect()
}

/// Decoding video files through the `ffmpeg` and `ffprobe` programs.
///
/// Why a subprocess: it costs nothing to build, reads every codec and container FFmpeg
/// knows, and keeps C libraries out of the build; the pure-Rust decoders cover only H.264
/// baseline in MP4 (openh264) and `ffmpeg-next` needs FFmpeg's development headers and a
/// matching version at build time. Requirement: `ffmpeg` and `ffprobe` on `PATH` at run time
/// (Debian/Ubuntu: `apt install ffmpeg`; macOS: `brew install ffmpeg`).
#[cfg(feature = "video-file")]
pub mod video_file {
    use std::io::Read;
    use std::path::Path;
    use std::process::{Command, Stdio};

    use image::RgbImage;

    use crate::error::{Result, VideoError};

    fn probe(path: &Path, entries: &str, extra: &[&str]) -> Result<String> {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0"])
            .args(extra)
            .args(["-show_entries", entries, "-of", "csv=p=0"])
            .arg(path)
            .output()
            .map_err(|e| VideoError::Decode(format!("cannot run ffprobe (is FFmpeg installed?): {e}")))?;
        if !out.status.success() {
            return Err(VideoError::Decode(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Width, height and number of frames of the first video stream.
    pub fn info(path: &Path) -> Result<(u32, u32, usize)> {
        let s = probe(path, "stream=width,height,nb_read_packets", &["-count_packets"])?;
        let v: Vec<&str> = s.lines().next().unwrap_or("").split(',').collect();
        let parse = |i: usize| -> Result<usize> {
            v.get(i)
                .and_then(|x| x.trim().parse().ok())
                .ok_or_else(|| VideoError::Decode(format!("unexpected ffprobe output {s:?}")))
        };
        Ok((parse(0)? as u32, parse(1)? as u32, parse(2)?))
    }

    /// Decodes the frames at `indices` (sorted, in stream order), streaming the video once and
    /// keeping only those frames.
    pub fn read_frames(path: &Path, indices: &[usize]) -> Result<Vec<RgbImage>> {
        let (w, h, _) = info(path)?;
        let mut child = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(path)
            .args([
                "-map", "0:v:0", "-vsync", "0", "-f", "rawvideo", "-pix_fmt", "rgb24", "-",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| VideoError::Decode(format!("cannot run ffmpeg (is FFmpeg installed?): {e}")))?;
        let mut stdout = child.stdout.take().expect("piped stdout");
        let size = w as usize * h as usize * 3;
        let mut frames = Vec::with_capacity(indices.len());
        let mut buf = vec![0u8; size];
        let mut wanted = indices.iter().peekable();
        let mut index = 0;
        while wanted.peek().is_some() {
            if stdout.read_exact(&mut buf).is_err() {
                break;
            }
            while wanted.peek() == Some(&&index) {
                frames.push(RgbImage::from_raw(w, h, buf.clone()).expect("frame size"));
                wanted.next();
            }
            index += 1;
        }
        drop(stdout);
        let _ = child.kill();
        let _ = child.wait();
        if frames.len() != indices.len() {
            return Err(VideoError::Decode(format!(
                "the video ended after {index} frames; frames {:?} were requested",
                indices
            )));
        }
        Ok(frames)
    }
}
