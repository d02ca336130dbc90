//! Compressing a file once per change: brotli, gzip and zstd at their strongest settings,
//! since the work is done once in the background and the bytes are sent on every page view.
//! The crates are the ones pingora-core already builds for its own compression module.

use std::io::Write;

use super::Encoding;

/// Brotli's strongest quality, and the window it is best with for files of this size.
const BROTLI_QUALITY: u32 = 11;
const BROTLI_WINDOW: u32 = 22;
/// zstd's strongest level without `--ultra`'s memory needs at the decoder.
const ZSTD_LEVEL: i32 = 19;

/// `data` compressed with `encoding`, or `None` for `identity` or if the encoder failed.
pub fn compress(encoding: Encoding, data: &[u8]) -> Option<Vec<u8>> {
    match encoding {
        Encoding::Identity => None,
        Encoding::Brotli => {
            let mut out = Vec::with_capacity(data.len() / 3);
            let mut w =
                brotli::CompressorWriter::new(&mut out, 4096, BROTLI_QUALITY, BROTLI_WINDOW);
            w.write_all(data).ok()?;
            w.flush().ok()?;
            drop(w);
            Some(out)
        }
        Encoding::Gzip => {
            let mut w = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 3),
                flate2::Compression::best(),
            );
            w.write_all(data).ok()?;
            w.finish().ok()
        }
        Encoding::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL).ok(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Read;

    use super::*;

    /// Decodes `data` as `encoding` with each format's own reader.
    pub(crate) fn decode(encoding: Encoding, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match encoding {
            Encoding::Identity => out.extend_from_slice(data),
            Encoding::Brotli => {
                brotli::Decompressor::new(data, 4096)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Encoding::Gzip => {
                flate2::read::GzDecoder::new(data)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Encoding::Zstd => out = zstd::stream::decode_all(data).unwrap(),
        }
        out
    }

    #[test]
    fn every_encoding_decodes_to_the_original_bytes() {
        let text: Vec<u8> = (0..5000)
            .flat_map(|i| format!("var a{i} = document.title + {i};\n").into_bytes())
            .collect();
        for input in [&text[..], b"", b"x"] {
            for e in [Encoding::Brotli, Encoding::Gzip, Encoding::Zstd] {
                let packed = compress(e, input).unwrap();
                assert_eq!(decode(e, &packed), input, "{e:?}");
            }
        }
        assert!(compress(Encoding::Identity, &text).is_none());
    }
}
