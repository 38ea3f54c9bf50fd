//! The admin API (`/api/v1`), authenticated by an admin token.

use std::path::Path;

use bytes::Bytes;
use ferry_api::trust::{DirectorRotated, DraftQuery, OnlineKeys, Published, TargetsDraft, TrustStatus};
use ferry_api::{
    ApplicabilityReport, ApprovalSpec, CheckNow, ContentInfo, DeviceDetail, DeviceGroups, DeviceTest, EnrollmentKey,
    FilterPreview, FilterPreviewSpec, GroupCreated, GroupSpec, GroupUpdate, GroupView, Health, MarkBadSpec,
    PlatformSpec, PreauthorizeSpec, PreauthorizedDevice, ProductSpec, ReleaseSpec, TestResults, TokenCreated,
    TokenSpec, Whoami, ADMIN_PREFIX, SHA256_HEADER,
};
use ferry_core::{
    AdminToken, Approval, Device, DeviceId, DeviceStatus, Event, GroupName, Platform, PlatformName, Product,
    ProductName, Release, ReleaseChange, ReleaseId, Sha256,
};
use futures::TryStreamExt;
use reqwest::header::CONTENT_LENGTH;
use reqwest::{Method, Url};
use tokio_util::io::ReaderStream;

use crate::content::CHUNK;
use crate::http::{with_query, Http};
use crate::ClientError;

/// Which devices [`AdminClient::list_devices`] returns. The default lists the first page of
/// all devices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceQuery {
    /// Only devices in this status.
    pub status: Option<DeviceStatus>,
    /// Only members of this group.
    pub group: Option<GroupName>,
    /// Only devices whose identity more than one machine claims.
    pub conflicts: bool,
    /// Only ids sorting after this one (pagination: pass the last id of the previous page).
    pub after: Option<DeviceId>,
    /// At most this many; the server's default and maximum is 1000.
    pub limit: Option<u32>,
}

/// A client of the admin API.
#[derive(Debug, Clone)]
pub struct AdminClient {
    http: Http,
}

impl AdminClient {
    /// A client for the server at `base_url` (e.g. `http://127.0.0.1:8080`), authenticating
    /// with an admin token (`ferry_adm_…`). Nothing is sent until the first call.
    pub fn new(base_url: &str, token: impl AsRef<str>) -> Result<Self, ClientError> {
        Ok(Self { http: Http::new(base_url, Some(token.as_ref()))? })
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &Url {
        self.http.base()
    }

    fn url(&self, segments: &[&str]) -> Url {
        self.http.url(ADMIN_PREFIX, segments)
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, segments: &[&str]) -> Result<T, ClientError> {
        self.http.get(self.url(segments)).await
    }

    async fn post<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> Result<T, ClientError> {
        self.http.send_json(Method::POST, self.url(segments), body).await
    }

    // --- health and identity --------------------------------------------------------------

    /// `GET /livez`: the process is up.
    pub async fn livez(&self) -> Result<Health, ClientError> {
        self.http.livez().await
    }

    /// `GET /readyz`: the server can reach its database. A 503 is an [`ClientError::Api`]
    /// with code `unavailable` and the server's explanation.
    pub async fn readyz(&self) -> Result<Health, ClientError> {
        self.http.readyz().await
    }

    /// `GET /whoami`: the token's name and role.
    pub async fn whoami(&self) -> Result<Whoami, ClientError> {
        self.get(&["whoami"]).await
    }

    /// `GET /openapi.json`: the OpenAPI document of the server's API.
    pub async fn openapi(&self) -> Result<serde_json::Value, ClientError> {
        self.get(&["openapi.json"]).await
    }

    // --- products and platforms -----------------------------------------------------------

    /// `GET /products`.
    pub async fn list_products(&self) -> Result<Vec<Product>, ClientError> {
        self.get(&["products"]).await
    }

    /// `POST /products`.
    pub async fn create_product(&self, spec: &ProductSpec) -> Result<Product, ClientError> {
        self.post(&["products"], spec).await
    }

    /// `GET /products/{name}`.
    pub async fn get_product(&self, name: &ProductName) -> Result<Product, ClientError> {
        self.get(&["products", name.as_str()]).await
    }

    /// `GET /platforms`.
    pub async fn list_platforms(&self) -> Result<Vec<Platform>, ClientError> {
        self.get(&["platforms"]).await
    }

    /// `POST /platforms`.
    pub async fn create_platform(&self, spec: &PlatformSpec) -> Result<Platform, ClientError> {
        self.post(&["platforms"], spec).await
    }

    /// `GET /platforms/{name}`.
    pub async fn get_platform(&self, name: &PlatformName) -> Result<Platform, ClientError> {
        self.get(&["platforms", name.as_str()]).await
    }

    // --- content --------------------------------------------------------------------------

    /// `POST /content` streaming the file at `path` from disk with its `Content-Length`.
    /// With `expected`, the server refuses content with another digest (`hash_mismatch`) and
    /// skips the transfer's storage when it already has it. `progress` is called with the
    /// number of bytes sent so far.
    pub async fn upload_content_file(
        &self,
        path: &Path,
        expected: Option<&Sha256>,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<ContentInfo, ClientError> {
        let file = tokio::fs::File::open(path).await.map_err(|e| ClientError::io("open", path, e))?;
        let length = file.metadata().await.map_err(|e| ClientError::io("read", path, e))?.len();
        let mut sent = 0u64;
        let stream = ReaderStream::with_capacity(file, CHUNK).inspect_ok(move |chunk| {
            sent += chunk.len() as u64;
            progress(sent);
        });
        let body = reqwest::Body::wrap_stream(stream);
        self.upload(body, length, expected).await
    }

    /// `POST /content` with content held in memory (small artifacts, tests).
    pub async fn upload_content(
        &self,
        data: impl Into<Bytes>,
        expected: Option<&Sha256>,
    ) -> Result<ContentInfo, ClientError> {
        let data: Bytes = data.into();
        let length = data.len() as u64;
        self.upload(data.into(), length, expected).await
    }

    async fn upload(
        &self,
        body: reqwest::Body,
        length: u64,
        expected: Option<&Sha256>,
    ) -> Result<ContentInfo, ClientError> {
        let mut req = self
            .http
            .request(Method::POST, self.url(&["content"]))
            .header(CONTENT_LENGTH, length)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream");
        if let Some(sha) = expected {
            req = req.header(SHA256_HEADER, sha.as_str());
        }
        self.http.decode(self.http.send(req.body(body)).await?).await
    }

    /// `HEAD /content/{sha256}`: the stored length, or `None` when the server does not have
    /// the content.
    pub async fn content_exists(&self, sha256: &Sha256) -> Result<Option<u64>, ClientError> {
        self.http.head_length(self.url(&["content", sha256.as_str()])).await
    }

    // --- releases and approvals -----------------------------------------------------------

    /// `GET /releases[?product=]`, newest first.
    pub async fn list_releases(&self, product: Option<&ProductName>) -> Result<Vec<Release>, ClientError> {
        let url = with_query(self.url(&["releases"]), &[("product", product.map(|p| p.to_string()))]);
        self.http.get(url).await
    }

    /// `POST /releases`. The artifacts' content must have been uploaded first.
    pub async fn create_release(&self, spec: &ReleaseSpec) -> Result<Release, ClientError> {
        self.post(&["releases"], spec).await
    }

    // --- rollouts ---------------------------------------------------------------------------

    /// `POST /rollouts`.
    pub async fn create_rollout(&self, spec: &ferry_api::RolloutSpec) -> Result<ferry_api::RolloutDetail, ClientError> {
        self.post(&["rollouts"], spec).await
    }

    /// `GET /rollouts[?release=&active=]`, newest first.
    pub async fn list_rollouts(
        &self,
        release: Option<ReleaseId>,
        active: bool,
    ) -> Result<Vec<ferry_core::rollout::Rollout>, ClientError> {
        let query = [("release", release.map(|r| r.to_string())), ("active", active.then(|| "true".to_owned()))];
        self.http.get(with_query(self.url(&["rollouts"]), &query)).await
    }

    /// `GET /rollouts/{id}`: the rollout, its tally per wave and its timeline.
    pub async fn get_rollout(
        &self,
        id: ferry_core::rollout::RolloutId,
    ) -> Result<ferry_api::RolloutDetail, ClientError> {
        self.http.get(self.url(&["rollouts", &id.to_string()])).await
    }

    /// `POST /rollouts/{id}/{action}`: pause, resume, advance or cancel, with a note for the
    /// timeline.
    pub async fn rollout_action(
        &self,
        id: ferry_core::rollout::RolloutId,
        action: ferry_core::rollout::Action,
        note: &str,
    ) -> Result<ferry_api::RolloutDetail, ClientError> {
        let body = ferry_api::RolloutActionRequest { note: note.to_owned() };
        self.post(&["rollouts", &id.to_string(), action.as_str()], &body).await
    }

    /// `GET /releases/{id}`.
    pub async fn get_release(&self, id: ReleaseId) -> Result<Release, ClientError> {
        self.get(&["releases", &id.to_string()]).await
    }

    /// `PATCH /releases/{id}`: changes the notes and/or archives or unarchives the release.
    pub async fn update_release(&self, id: ReleaseId, change: &ReleaseChange) -> Result<Release, ClientError> {
        self.http.send_json(Method::PATCH, self.url(&["releases", &id.to_string()]), change).await
    }

    /// `POST /releases/{id}/mark-bad`: withdraws the release from every offer and tells the
    /// devices running it to go back to the version they kept. Marking again returns the
    /// release as first marked.
    pub async fn mark_release_bad(&self, id: ReleaseId, reason: &str) -> Result<Release, ClientError> {
        let body = MarkBadSpec { reason: reason.to_owned() };
        self.http.send_json(Method::POST, self.url(&["releases", &id.to_string(), "mark-bad"]), &body).await
    }

    /// `DELETE /releases/{id}`: deletes a release no device can have been offered.
    pub async fn delete_release(&self, id: ReleaseId) -> Result<(), ClientError> {
        self.http.send_empty(Method::DELETE, self.url(&["releases", &id.to_string()])).await
    }

    /// `GET /releases/{id}/approvals`.
    pub async fn release_approvals(&self, id: ReleaseId) -> Result<Vec<Approval>, ClientError> {
        self.get(&["releases", &id.to_string(), "approvals"]).await
    }

    /// `PUT /releases/{id}/approvals/{group}`: approves (or declines) a release for a group,
    /// replacing an earlier approval.
    pub async fn set_approval(
        &self,
        id: ReleaseId,
        group: &GroupName,
        spec: &ApprovalSpec,
    ) -> Result<Approval, ClientError> {
        let url = self.url(&["releases", &id.to_string(), "approvals", group.as_str()]);
        self.http.send_json(Method::PUT, url, spec).await
    }

    /// `DELETE /releases/{id}/approvals/{group}`: removes the approval ("unapprove").
    pub async fn delete_approval(&self, id: ReleaseId, group: &GroupName) -> Result<(), ClientError> {
        let url = self.url(&["releases", &id.to_string(), "approvals", group.as_str()]);
        self.http.send_empty(Method::DELETE, url).await
    }

    /// `GET /approvals[?group=]`.
    pub async fn list_approvals(&self, group: Option<&GroupName>) -> Result<Vec<Approval>, ClientError> {
        let url = with_query(self.url(&["approvals"]), &[("group", group.map(|g| g.to_string()))]);
        self.http.get(url).await
    }

    // --- groups ---------------------------------------------------------------------------

    /// `GET /groups`.
    pub async fn list_groups(&self) -> Result<Vec<GroupView>, ClientError> {
        self.get(&["groups"]).await
    }

    /// `POST /groups`: the answer carries the group's enrollment key, shown only this once.
    pub async fn create_group(&self, spec: &GroupSpec) -> Result<GroupCreated, ClientError> {
        self.post(&["groups"], spec).await
    }

    /// `GET /groups/{name}`.
    pub async fn get_group(&self, name: &GroupName) -> Result<GroupView, ClientError> {
        self.get(&["groups", name.as_str()]).await
    }

    /// `PATCH /groups/{name}`: changes the fields that are set in `update`.
    pub async fn update_group(&self, name: &GroupName, update: &GroupUpdate) -> Result<GroupView, ClientError> {
        self.http.send_json(Method::PATCH, self.url(&["groups", name.as_str()]), update).await
    }

    /// `POST /groups/{name}/enrollment-key`: replaces the group's enrollment key; the old one
    /// stops working.
    pub async fn rotate_enrollment_key(&self, name: &GroupName) -> Result<EnrollmentKey, ClientError> {
        self.http.post_empty(self.url(&["groups", name.as_str(), "enrollment-key"])).await
    }

    /// `POST /groups/preview`: how many devices `filter` matches now, and the first of them.
    pub async fn preview_filter(&self, filter: &str) -> Result<FilterPreview, ClientError> {
        self.post(&["groups", "preview"], &FilterPreviewSpec { filter: filter.to_owned() }).await
    }

    // --- devices --------------------------------------------------------------------------

    /// `GET /devices`: one page of devices, ordered by id.
    pub async fn list_devices(&self, query: &DeviceQuery) -> Result<Vec<Device>, ClientError> {
        let url = with_query(
            self.url(&["devices"]),
            &[
                ("status", query.status.map(|s| s.as_str().to_owned())),
                ("group", query.group.as_ref().map(|g| g.to_string())),
                ("conflicts", query.conflicts.then(|| "true".to_owned())),
                ("after", query.after.as_ref().map(|a| a.to_string())),
                ("limit", query.limit.map(|l| l.to_string())),
            ],
        );
        self.http.get(url).await
    }

    /// `POST /devices`: lists a device id in advance and issues the key its device enrolls
    /// with (accepted at once); asked again before the device enrolls, issues a new key.
    pub async fn preauthorize_device(&self, spec: &PreauthorizeSpec) -> Result<PreauthorizedDevice, ClientError> {
        self.post(&["devices"], spec).await
    }

    /// `GET /devices/{id}`: the device, its latest state per release and recent events.
    pub async fn get_device(&self, id: &DeviceId) -> Result<DeviceDetail, ClientError> {
        self.get(&["devices", id.as_str()]).await
    }

    /// `POST /devices/{id}/accept`.
    pub async fn accept_device(&self, id: &DeviceId) -> Result<Device, ClientError> {
        self.http.post_empty(self.url(&["devices", id.as_str(), "accept"])).await
    }

    /// `POST /devices/{id}/reject`: the device's credential stops working.
    pub async fn reject_device(&self, id: &DeviceId) -> Result<Device, ClientError> {
        self.http.post_empty(self.url(&["devices", id.as_str(), "reject"])).await
    }

    /// `PUT /devices/{id}/groups`: replaces the device's group memberships.
    pub async fn set_device_groups(&self, id: &DeviceId, groups: &DeviceGroups) -> Result<Device, ClientError> {
        self.http.send_json(Method::PUT, self.url(&["devices", id.as_str(), "groups"]), groups).await
    }

    /// `GET /devices/{id}/events[?release=&limit=]`, oldest first.
    pub async fn device_events(
        &self,
        id: &DeviceId,
        release: Option<ReleaseId>,
        limit: Option<u32>,
    ) -> Result<Vec<Event>, ClientError> {
        let url = with_query(
            self.url(&["devices", id.as_str(), "events"]),
            &[("release", release.map(|r| r.to_string())), ("limit", limit.map(|l| l.to_string()))],
        );
        self.http.get(url).await
    }

    /// `GET /devices/{id}/applicability`: why each release is or is not offered to it.
    pub async fn device_applicability(&self, id: &DeviceId) -> Result<ApplicabilityReport, ClientError> {
        self.get(&["devices", id.as_str(), "applicability"]).await
    }

    /// `PUT /devices/{id}/test`: marks the device as a test device (offered signed releases no
    /// one approved yet), or not.
    pub async fn set_device_test(&self, id: &DeviceId, test: bool) -> Result<Device, ClientError> {
        self.http.send_json(Method::PUT, self.url(&["devices", id.as_str(), "test"]), &DeviceTest { test }).await
    }

    /// `POST /devices/{id}/check-now`: asks the device's agent to check in now.
    pub async fn check_now(&self, id: &DeviceId) -> Result<CheckNow, ClientError> {
        self.http.post_empty(self.url(&["devices", id.as_str(), "check-now"])).await
    }

    /// `GET /releases/{id}/test-results`: how the release went on the test devices that
    /// reported on it.
    pub async fn release_test_results(&self, id: ReleaseId) -> Result<TestResults, ClientError> {
        self.get(&["releases", &id.to_string(), "test-results"]).await
    }

    // --- tokens ---------------------------------------------------------------------------

    /// `GET /tokens`, revoked ones included.
    pub async fn list_tokens(&self) -> Result<Vec<AdminToken>, ClientError> {
        self.get(&["tokens"]).await
    }

    /// `POST /tokens`: the answer carries the secret, shown only this once.
    pub async fn create_token(&self, spec: &TokenSpec) -> Result<TokenCreated, ClientError> {
        self.post(&["tokens"], spec).await
    }

    /// `DELETE /tokens/{id}`.
    pub async fn revoke_token(&self, id: i64) -> Result<(), ClientError> {
        self.http.send_empty(Method::DELETE, self.url(&["tokens", &id.to_string()])).await
    }

    // --- trust ----------------------------------------------------------------------------

    /// `GET /trust/online-keys`: the server's online public keys by role, as TUF lists keys.
    pub async fn online_keys(&self) -> Result<OnlineKeys, ClientError> {
        self.get(&["trust", "online-keys"]).await
    }

    /// `POST /trust/image/online-keys/next`: makes (or shows) the snapshot and timestamp keys
    /// an online-key rotation will switch to, in the shape of [`Self::online_keys`]; they take
    /// over once a pushed root lists them.
    pub async fn next_online_keys(&self) -> Result<OnlineKeys, ClientError> {
        self.http.post_empty(self.url(&["trust", "image", "online-keys", "next"])).await
    }

    /// `POST /trust/director/rotate`: rotates the director's online keys (director root N+1
    /// signed by the old and the new root key).
    pub async fn rotate_director_keys(&self) -> Result<DirectorRotated, ClientError> {
        self.http.post_empty(self.url(&["trust", "director", "rotate"])).await
    }

    /// `PUT /trust/image/root`, `/trust/image/targets` or `/trust/image/roles/{role}`: pushes
    /// signed metadata bytes exactly as signed.
    pub async fn push_image_metadata(&self, role: &str, bytes: Vec<u8>) -> Result<Published, ClientError> {
        let url = match role {
            "root" | "targets" => self.url(&["trust", "image", role]),
            delegated => self.url(&["trust", "image", "roles", delegated]),
        };
        let req =
            self.http.request(Method::PUT, url).header(reqwest::header::CONTENT_TYPE, "application/json").body(bytes);
        self.http.decode(self.http.send(req).await?).await
    }

    /// `GET /trust/image/draft`: the next version of `role`'s targets, unsigned, with the given
    /// releases (default: every unsigned one) added.
    pub async fn draft_targets(
        &self,
        role: &str,
        releases: Option<&[ReleaseId]>,
        expires_days: Option<u32>,
    ) -> Result<TargetsDraft, ClientError> {
        let query = DraftQuery {
            role: Some(role.to_owned()),
            releases: releases.map(|ids| ids.iter().map(|id| id.0.to_string()).collect::<Vec<_>>().join(",")),
            expires_days,
        };
        let pairs = [
            ("role", query.role),
            ("releases", query.releases),
            ("expires_days", query.expires_days.map(|d| d.to_string())),
        ];
        self.http.get(with_query(self.url(&["trust", "image", "draft"]), &pairs)).await
    }

    /// `GET /trust/image/status`.
    pub async fn trust_status(&self) -> Result<TrustStatus, ClientError> {
        self.get(&["trust", "image", "status"]).await
    }
}
