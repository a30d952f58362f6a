//! `kv`: the instance's own key-value namespace, served from memory (see
//! `kv_cache`: the store is written behind, outside the guest's calls).

use super::super::wit::since_v0_2_0::presence::connector::kv;
use super::super::wit::types::HostError;
use super::kv_cache::KvCache;
use super::{InstanceState, store_err};

/// Largest key and value a plugin may store.
const MAX_KV_KEY: usize = 512;
const MAX_KV_VALUE: usize = 256 * 1024;

impl InstanceState {
    /// The run's key-value data, when the plugin has the grant and it loaded.
    fn kv(&mut self) -> Result<&mut KvCache, HostError> {
        if self.kv.is_none() {
            return Err(self.denied("kv (set grants.kv = true in the plugin manifest)".into()));
        }
        match &mut self.kv {
            Some(Ok(kv)) => Ok(kv),
            Some(Err(e)) => Err(HostError::Other(format!(
                "the key-value data could not be loaded at the start of this run: {e}"
            ))),
            None => unreachable!("checked above"),
        }
    }
}

impl kv::Host for InstanceState {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, HostError>> {
        Ok(self.kv().map(|kv| kv.get(&key).map(<[u8]>::to_vec)))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), HostError>> {
        let kv = match self.kv() {
            Ok(kv) => kv,
            Err(e) => return Ok(Err(e)),
        };
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
        Ok(kv.set(key, value).map_err(store_err))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), HostError>> {
        Ok(self.kv().map(|kv| kv.delete(&key)))
    }

    fn list_keys(&mut self, prefix: String) -> wasmtime::Result<Result<Vec<String>, HostError>> {
        Ok(self.kv().map(|kv| kv.keys(&prefix)))
    }
}
