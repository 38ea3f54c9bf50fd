//! The OpenAPI document the server serves at `/api/v1/openapi.json`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::extract::Json;
use crate::routes::{catalogue, device, devices, download, groups, health, pilot, rollouts, tokens, trust, wake};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let scheme = |desc: &str| {
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(desc)).build())
        };
        components.add_security_scheme("admin_token", scheme("admin token (ferry_adm_…)"));
        components.add_security_scheme("device_credential", scheme("device credential (ferry_dev_…)"));
    }
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Ferry", description = "Ferry update server: admin API under /api/v1, device API under /device/v1."),
    modifiers(&BearerAuth),
    paths(
        health::livez, health::readyz,
        tokens::whoami, tokens::list_tokens, tokens::create_token, tokens::revoke_token,
        catalogue::list_products, catalogue::create_product, catalogue::get_product,
        catalogue::list_platforms, catalogue::create_platform, catalogue::get_platform,
        catalogue::upload_content, catalogue::head_content,
        catalogue::list_releases, catalogue::create_release, catalogue::get_release,
        catalogue::delete_release, catalogue::update_release, catalogue::mark_release_bad,
        catalogue::release_approvals, catalogue::list_approvals, catalogue::set_approval, catalogue::delete_approval,
        rollouts::create_rollout, rollouts::list_rollouts, rollouts::get_rollout, rollouts::act,
        groups::list_groups, groups::create_group, groups::get_group, groups::update_group, groups::rotate_enrollment_key,
        groups::preview,
        devices::list_devices, devices::preauthorize, devices::get_device, devices::accept, devices::reject,
        devices::set_groups, devices::events, devices::applicability,
        device::enroll, device::checkin, device::events, download::download,
        trust::online_keys, trust::push_root, trust::push_targets, trust::push_delegated, trust::draft,
        trust::status, trust::image_metadata, trust::image_target, trust::director_metadata,
        trust::next_online_keys, trust::rotate_director,
        pilot::set_test, pilot::test_results, wake::check_now, wake::wait,
    ),
    security(("admin_token" = []))
)]
pub struct ApiDoc;

/// `GET /api/v1/openapi.json`.
pub async fn serve_document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// `schema`, or the component its `$ref` names.
    fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(target) => doc.pointer(target.trim_start_matches('#')).unwrap_or(&Value::Null),
            None => schema,
        }
    }

    /// Clients generated from the document get a type for every trust body, not a bare
    /// object: each admin trust route's JSON request and success response is a schema with
    /// properties.
    #[test]
    fn every_trust_admin_route_has_typed_bodies() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut checked = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            if !path.starts_with("/api/v1/trust/") {
                continue;
            }
            for (method, op) in item.as_object().unwrap() {
                let mut bodies: Vec<(String, &Value)> = Vec::new();
                if let Some(body) = op.get("requestBody") {
                    bodies.push(("request".to_owned(), &body["content"]));
                }
                let responses = op["responses"].as_object().unwrap();
                let successes: Vec<_> = responses.iter().filter(|(status, _)| status.starts_with('2')).collect();
                assert!(!successes.is_empty(), "{method} {path} documents no success");
                for (status, response) in successes {
                    bodies.push((format!("{status} response"), &response["content"]));
                }
                for (what, content) in bodies {
                    let schema = &content["application/json"]["schema"];
                    let properties = resolve(&doc, schema)["properties"].as_object();
                    assert!(
                        properties.is_some_and(|p| !p.is_empty()),
                        "{method} {path}: the {what} schema {schema} is not a typed object"
                    );
                    checked.push(format!("{method} {path} {what}"));
                }
            }
        }
        // Eight routes, three of which take signed metadata.
        assert_eq!(checked.len(), 11, "{checked:#?}");
    }
}
