//! The S3 backend through aws-sdk-s3: any region (default `eu-west-1`), custom endpoints and
//! path-style addressing for S3-compatible servers. The bucket's region is checked at start.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use secrecy::ExposeSecret;

use super::{ObjectFolder, ObjectKey, S3Config, StoreError};

#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
}

fn failed(operation: &'static str) -> impl Fn(String) -> StoreError {
    move |message| StoreError::S3 { operation, message }
}

impl S3Store {
    pub async fn open(config: &S3Config) -> Result<S3Store, StoreError> {
        let credentials = Credentials::new(
            config.access_key_id.clone(),
            config.secret_access_key.expose_secret().to_string(),
            None,
            None,
            "siteward-config",
        );
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(config.path_style);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint.as_str().trim_end_matches('/'));
        }
        let store = S3Store {
            client: Client::from_conf(builder.build()),
            bucket: config.bucket.clone(),
        };
        store.check_region(&config.region).await?;
        Ok(store)
    }

    /// S3 reports `us-east-1` as no location constraint.
    async fn check_region(&self, configured: &str) -> Result<(), StoreError> {
        let location = self
            .client
            .get_bucket_location()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| failed("GetBucketLocation")(describe(&e)))?;
        // No constraint means us-east-1; the legacy constraint `EU` means eu-west-1.
        let actual = match location.location_constraint().map(|c| c.as_str()) {
            None | Some("") => "us-east-1".to_string(),
            Some("EU") => "eu-west-1".to_string(),
            Some(region) => region.to_string(),
        };
        if actual != configured {
            return Err(StoreError::RegionMismatch {
                bucket: self.bucket.clone(),
                configured: configured.to_string(),
                actual,
            });
        }
        Ok(())
    }

    pub async fn put(&self, key: &ObjectKey, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failed("PutObject")(describe(&e)))
    }

    pub async fn get(&self, key: &ObjectKey) -> Result<Vec<u8>, StoreError> {
        let object = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
        {
            Ok(object) => object,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                return Err(StoreError::NotFound(key.to_string()));
            }
            Err(e) => return Err(failed("GetObject")(describe(&e))),
        };
        // The SDK checks the object's checksum while reading when the server sends one, so a body
        // changed on the server may fail here already; envelope authentication catches the rest.
        let body = object
            .body
            .collect()
            .await
            .map_err(|e| failed("GetObject")(chain(&e)))?;
        Ok(body.into_bytes().to_vec())
    }

    pub async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failed("DeleteObject")(describe(&e)))
    }
}

impl S3Store {
    /// Lists the folder a page (at most 1,000 keys) at a time and deletes each page with one
    /// DeleteObjects call, until the listing comes back empty.
    pub async fn delete_folder(&self, folder: &ObjectFolder) -> Result<u64, StoreError> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        let mut deleted = 0;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(folder.as_str())
                .send()
                .await
                .map_err(|e| failed("ListObjectsV2")(describe(&e)))?;
            let objects = page
                .contents()
                .iter()
                .filter_map(|object| object.key())
                .map(|key| ObjectIdentifier::builder().key(key).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| failed("DeleteObjects")(e.to_string()))?;
            if objects.is_empty() {
                return Ok(deleted);
            }
            let count = objects.len() as u64;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| failed("DeleteObjects")(e.to_string()))?;
            let answer = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| failed("DeleteObjects")(describe(&e)))?;
            if let Some(refused) = answer.errors().first() {
                return Err(failed("DeleteObjects")(format!(
                    "{}: {}",
                    refused.key().unwrap_or("?"),
                    refused.message().unwrap_or("refused")
                )));
            }
            deleted += count;
        }
    }
}

/// The SDK's error with its service message (the bare `Display` says only "service error").
fn describe<E: std::error::Error + 'static>(error: &aws_sdk_s3::error::SdkError<E>) -> String {
    chain(error)
}

/// An error and all its causes on one line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
