//! HTTP routes of the lab's vCenter: vSphere REST under `/rest` and SOAP at `/sdk`.

use axum::Router;
use axum::routing::{delete, get, post};

use super::{rest, soap};
use crate::SiteCtx;

/// The vCenter endpoint's routes.
pub fn router() -> Router<SiteCtx> {
    const CL: &str = "/rest/com/vmware/content";
    const TAG: &str = "/rest/com/vmware/cis/tagging";
    Router::new()
        .route("/sdk", post(soap::sdk))
        .route("/rest/com/vmware/cis/session", post(rest::login).delete(rest::logout))
        .route(&format!("{CL}/local-library"), post(rest::create_library))
        .route(&format!("{CL}/subscribed-library"), post(rest::create_library))
        .route(&format!("{CL}/library"), get(rest::list_libraries).post(rest::library_collection_action))
        .route(&format!("{CL}/library/{{id}}"), get(rest::library_by_id).patch(rest::library_by_id))
        .route(
            &format!("{CL}/local-library/{{id}}"),
            get(rest::library_by_id).patch(rest::library_by_id).delete(rest::library_by_id),
        )
        .route(
            &format!("{CL}/subscribed-library/{{id}}"),
            get(rest::library_by_id)
                .patch(rest::library_by_id)
                .delete(rest::library_by_id)
                .post(rest::library_by_id),
        )
        .route(&format!("{CL}/library/item"), get(rest::list_items).post(rest::item_collection))
        .route(
            &format!("{CL}/library/item/{{id}}"),
            get(rest::item_by_id).patch(rest::item_by_id).delete(rest::item_by_id),
        )
        .route(&format!("{CL}/library/item/file"), get(rest::list_item_files))
        .route(
            &format!("{CL}/library/item/update-session"),
            get(rest::list_update_sessions).post(rest::create_update_session),
        )
        .route(
            &format!("{CL}/library/item/update-session/{{id}}"),
            get(rest::update_session_by_id)
                .post(rest::update_session_by_id)
                .delete(rest::update_session_by_id),
        )
        .route(&format!("{CL}/library/item/updatesession/file"), get(rest::list_update_session_files))
        .route(&format!("{CL}/library/item/updatesession/file/{{id}}"), post(rest::update_session_file))
        .route(
            &format!("{CL}/library/item/download-session"),
            get(rest::list_download_sessions).post(rest::create_download_session),
        )
        .route(
            &format!("{CL}/library/item/download-session/{{id}}"),
            get(rest::download_session_by_id).delete(rest::download_session_by_id),
        )
        .route(&format!("{CL}/library/item/downloadsession/file/{{id}}"), post(rest::download_session_file))
        .route("/rest/com/vmware/cis/data/{data_id}/{name}", get(rest::data))
        .route("/rest/com/vmware/vcenter/ovf/library-item", post(rest::ovf_create))
        .route("/rest/com/vmware/vcenter/ovf/library-item/{id}", post(rest::ovf_deploy))
        .route("/rest/vcenter/vm-template/library-items", post(rest::vmtx_create))
        .route("/rest/vcenter/vm-template/library-items/{id}", post(rest::vmtx_deploy))
        .route("/rest/vcenter/vm/{id}", delete(rest::delete_vm))
        .route(&format!("{TAG}/category"), get(rest::category_collection).post(rest::category_collection))
        .route(&format!("{TAG}/category/{{id}}"), get(rest::category_by_id).delete(rest::category_by_id))
        .route(&format!("{TAG}/tag"), get(rest::tag_collection).post(rest::tag_collection))
        .route(
            &format!("{TAG}/tag/{{id}}"),
            get(rest::tag_by_id).post(rest::tag_by_id).patch(rest::tag_by_id).delete(rest::tag_by_id),
        )
        .route(&format!("{TAG}/tag-association"), post(rest::tag_association))
        .route(&format!("{TAG}/tag-association/{{id}}"), post(rest::tag_association_by_id))
}
