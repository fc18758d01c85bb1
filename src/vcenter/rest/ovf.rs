//! OVF and VM-template items and the VMs deployed from them: capture, deploy and delete
//! (`/rest/com/vmware/vcenter/ovf/library-item`, `/rest/vcenter/vm-template/library-items`,
//! `/rest/vcenter/vm`).

use reqwest::Method;
use serde_json::{Value, json};

use super::seg;
use crate::live::{GoldenMeta, ItemId, LibraryId, Moref};
use crate::vcenter::{VcenterClient, VcenterError, meta_to_description};

/// Where to deploy a VM (OVF or VM template): resolved by [`crate::vcenter::Inventory::placement`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploySpec {
    pub name: String,
    /// The new VM's annotation (its notes in the vSphere client). golden writes its metadata
    /// here, so a VM deployed by golden is golden's from the moment it exists.
    pub annotation: Option<String>,
    pub folder: Moref,
    pub resource_pool: Moref,
    pub datastore: Moref,
}

impl VcenterClient {
    /// Captures `vm` as an OVF item in `library`, carrying golden's metadata.
    pub async fn create_ovf_from_vm(
        &self,
        library: &LibraryId,
        vm: &Moref,
        name: &str,
        meta: &GoldenMeta,
    ) -> Result<ItemId, VcenterError> {
        let op = format!("capture vm {vm} as ovf item `{name}` in library {library}");
        let body = json!({
            "client_token": uuid::Uuid::new_v4().to_string(),
            "source": {"type": "VirtualMachine", "id": vm.as_str()},
            "target": {"library_id": library.as_str()},
            "create_spec": {"name": name, "description": meta_to_description(meta)},
        });
        let value = self.call_long(&op, "/com/vmware/vcenter/ovf/library-item", body).await?;
        // HTTP 200 even on failure: the body says whether it worked.
        if value.get("succeeded").and_then(Value::as_bool) != Some(true) {
            return Err(self.err_failed(&op, ovf_error(&value)));
        }
        value
            .get("ovf_library_item_id")
            .and_then(Value::as_str)
            .map(ItemId::new)
            .ok_or_else(|| self.err_protocol(&op, "no ovf_library_item_id in the answer"))
    }

    /// Deploys an OVF item as a new VM; returns its moref.
    pub async fn deploy_ovf(&self, item: &ItemId, spec: &DeploySpec) -> Result<Moref, VcenterError> {
        let op = format!("deploy ovf item {item} as vm `{}`", spec.name);
        let path = format!("/com/vmware/vcenter/ovf/library-item/id:{}?~action=deploy", seg(item.as_str()));
        let body = json!({
            "client_token": uuid::Uuid::new_v4().to_string(),
            "target": {"resource_pool_id": spec.resource_pool.as_str(), "folder_id": spec.folder.as_str()},
            "deployment_spec": {
                "name": spec.name,
                "accept_all_EULA": true,
                "default_datastore_id": spec.datastore.as_str(),
            },
        });
        let mut body = body;
        if let Some(annotation) = &spec.annotation {
            body["deployment_spec"]["annotation"] = json!(annotation);
        }
        let value = self.call_long(&op, &path, body).await?;
        if value.get("succeeded").and_then(Value::as_bool) != Some(true) {
            return Err(self.err_failed(&op, ovf_error(&value)));
        }
        value
            .pointer("/resource_id/id")
            .and_then(Value::as_str)
            .map(Moref::new)
            .ok_or_else(|| self.err_protocol(&op, "no resource_id in the answer"))
    }

    /// Captures `vm` as a VM-template item; `placement` is where vCenter keeps the template.
    pub async fn create_vm_template(
        &self,
        library: &LibraryId,
        vm: &Moref,
        placement: &DeploySpec,
        meta: &GoldenMeta,
    ) -> Result<ItemId, VcenterError> {
        let op = format!("capture vm {vm} as vm-template item `{}` in library {library}", placement.name);
        let body = json!({"spec": {
            "source_vm": vm.as_str(),
            "name": placement.name,
            "description": meta_to_description(meta),
            "library": library.as_str(),
            "placement": {"folder": placement.folder.as_str(), "resource_pool": placement.resource_pool.as_str()},
            "vm_home_storage": {"datastore": placement.datastore.as_str()},
        }});
        self.created_id_long(&op, "/vcenter/vm-template/library-items", body).await.map(ItemId::new)
    }

    /// Deploys a VM-template item as a new, powered-off VM; returns its moref.
    pub async fn deploy_vm_template(&self, item: &ItemId, spec: &DeploySpec) -> Result<Moref, VcenterError> {
        let op = format!("deploy vm-template item {item} as vm `{}`", spec.name);
        // folder and resource_pool always: vcsim panics without the folder and needs the pool.
        let body = json!({"spec": {
            "name": spec.name,
            "powered_on": false,
            "placement": {"folder": spec.folder.as_str(), "resource_pool": spec.resource_pool.as_str()},
            "disk_storage": {"datastore": spec.datastore.as_str()},
            "vm_home_storage": {"datastore": spec.datastore.as_str()},
        }});
        let path = format!("/vcenter/vm-template/library-items/{}?action=deploy", seg(item.as_str()));
        self.created_id_long(&op, &path, body).await.map(Moref::new)
    }

    /// Deletes a VM (it must be powered off on a real vCenter). A VM that is gone already is
    /// deleted: so is a retried delete whose first answer was lost.
    pub async fn delete_vm(&self, vm: &Moref) -> Result<(), VcenterError> {
        let path = format!("/vcenter/vm/{}", seg(vm.as_str()));
        match self.call(&format!("delete vm {vm}"), Method::DELETE, &path, None).await {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }
}

/// The messages of a failed OVF call's `error` (vcsim and vCenter nest them differently).
fn ovf_error(value: &Value) -> String {
    let mut messages = Vec::new();
    collect_messages(value, &mut messages);
    if messages.is_empty() { "vcenter gave no reason".to_owned() } else { messages.join("; ") }
}

fn collect_messages(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("default_message", Value::String(s)) => out.push(s.clone()),
                    _ => collect_messages(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_messages(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ovf_errors_are_collected_from_nested_messages() {
        let v: Value = serde_json::from_str(
            r#"{"error":{"errors":[{"category":"SERVER","error":{"messages":[{"default_message":"no such file"}]}}]}}"#,
        )
        .expect("json");
        assert_eq!(ovf_error(&v), "no such file");
    }
}
