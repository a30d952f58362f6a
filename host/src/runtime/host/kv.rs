//! `kv`: the instance's own key-value namespace.

use super::super::wit::since_v0_2_0::presence::connector::kv;
use super::super::wit::types::HostError;
use super::{InstanceState, store_err};

/// Largest key and value a plugin may store.
const MAX_KV_KEY: usize = 512;
const MAX_KV_VALUE: usize = 256 * 1024;

impl kv::Host for InstanceState {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, HostError>> {
        if let Err(e) = self.kv_allowed() {
            return Ok(Err(e));
        }
        Ok(self
            .services
            .store
            .kv_get(&self.id.instance, &key)
            .map_err(store_err))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), HostError>> {
        if let Err(e) = self.kv_allowed() {
            return Ok(Err(e));
        }
        if key.is_empty() || key.len() > MAX_KV_KEY {
            return Ok(Err(HostError::InvalidArgument(format!(
                "key must be 1-{MAX_KV_KEY} bytes"
            ))));
        }
        if value.len() > MAX_KV_VALUE {
            return Ok(Err(HostError::LimitExceeded(format!(
                "value of {} bytes exceeds {MAX_KV_VALUE}",
                value.len()
            ))));
        }
        Ok(self
            .services
            .store
            .kv_set(&self.id.instance, &key, &value, self.id.kv_max_bytes)
            .map_err(store_err))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), HostError>> {
        if let Err(e) = self.kv_allowed() {
            return Ok(Err(e));
        }
        Ok(self
            .services
            .store
            .kv_delete(&self.id.instance, &key)
            .map_err(store_err))
    }

    fn list_keys(&mut self, prefix: String) -> wasmtime::Result<Result<Vec<String>, HostError>> {
        if let Err(e) = self.kv_allowed() {
            return Ok(Err(e));
        }
        Ok(self
            .services
            .store
            .kv_keys(&self.id.instance, &prefix)
            .map_err(store_err))
    }
}
