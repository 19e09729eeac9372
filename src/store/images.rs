//! How a message's images are kept in the `messages.images` column (SQLite and Postgres alike):
//! a JSON array of `{mimeType, data}` with the bytes in base64, so the row stays plain text.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::domain::Image;
use crate::store::{StoreError, StoreResult};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredImage {
    mime_type: String,
    data: String,
}

pub(crate) fn to_json(images: &[Image]) -> StoreResult<String> {
    let stored: Vec<_> = images
        .iter()
        .map(|i| StoredImage { mime_type: i.mime_type.clone(), data: STANDARD.encode(&i.data) })
        .collect();
    Ok(serde_json::to_string(&stored)?)
}

pub(crate) fn from_json(json: &str) -> StoreResult<Vec<Image>> {
    let stored: Vec<StoredImage> = serde_json::from_str(json)?;
    stored
        .into_iter()
        .map(|i| {
            let data = STANDARD
                .decode(i.data)
                .map_err(|e| StoreError::new(format!("stored image: {e}")))?;
            Ok(Image { data, mime_type: i.mime_type })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_round_trip_as_base64_json() {
        let images = vec![Image { data: vec![0, 1, 2, 255], mime_type: "image/png".into() }];
        let json = to_json(&images).unwrap();
        assert_eq!(json, r#"[{"mimeType":"image/png","data":"AAEC/w=="}]"#);
        assert_eq!(from_json(&json).unwrap(), images);
        assert_eq!(from_json("[]").unwrap(), Vec::new());
    }

    #[test]
    fn damaged_rows_are_errors_not_empty_images() {
        let error = from_json(r#"[{"mimeType":"image/png","data":"not base64!"}]"#).unwrap_err();
        assert!(error.message.starts_with("stored image:"), "{error}");
        assert!(from_json("{").unwrap_err().message.starts_with("stored JSON:"));
    }
}
