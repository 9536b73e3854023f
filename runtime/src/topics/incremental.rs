//! IncrementalAlterConfigs (KIP-339) through librdkafka's C API: the `rdkafka` crate exposes only the legacy
//! AlterConfigs, which replaces every topic override and which newer brokers (and nisshi) no longer accept.
//! Only the given keys are set; other overrides are left alone.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, c_char};
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::bindings as rd;
use rdkafka::client::DefaultClientContext;

/// Owns the C objects of one request and frees them however the function returns.
struct Request {
    queue: *mut rd::rd_kafka_queue_t,
    resource: *mut rd::rd_kafka_ConfigResource_t,
    options: *mut rd::rd_kafka_AdminOptions_t,
    event: *mut rd::rd_kafka_event_t,
}

impl Drop for Request {
    fn drop(&mut self) {
        // SAFETY: each pointer is either null or was returned by the matching librdkafka constructor and is
        // destroyed exactly once, here.
        unsafe {
            if !self.event.is_null() {
                rd::rd_kafka_event_destroy(self.event);
            }
            if !self.options.is_null() {
                rd::rd_kafka_AdminOptions_destroy(self.options);
            }
            if !self.resource.is_null() {
                rd::rd_kafka_ConfigResource_destroy(self.resource);
            }
            if !self.queue.is_null() {
                rd::rd_kafka_queue_destroy(self.queue);
            }
        }
    }
}

fn c_string(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"))
}

/// SAFETY: `p` is null or a NUL-terminated string owned by librdkafka that outlives this call.
unsafe fn text(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// Sets `configs` on `topic`, blocking until the broker answers or `timeout` passes.
pub fn set_topic_configs(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    configs: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<(), String> {
    let name = c_string(topic)?;
    let pairs: Vec<(CString, CString)> = configs
        .iter()
        .map(|(k, v)| Ok((c_string(k)?, c_string(v)?)))
        .collect::<Result<_, String>>()?;
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let rk = admin.inner().native_ptr();
    let mut req = Request {
        queue: std::ptr::null_mut(),
        resource: std::ptr::null_mut(),
        options: std::ptr::null_mut(),
        event: std::ptr::null_mut(),
    };
    // SAFETY: `rk` is the live client handle owned by `admin`, which outlives this call; every C string passed
    // lives until the end of the function; librdkafka copies the resource when the request is made; the
    // objects created are freed by `req`'s Drop.
    unsafe {
        req.queue = rd::rd_kafka_queue_new(rk);
        req.resource = rd::rd_kafka_ConfigResource_new(
            rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
            name.as_ptr(),
        );
        if req.queue.is_null() || req.resource.is_null() {
            return Err("librdkafka could not allocate the request".into());
        }
        for (k, v) in &pairs {
            let err = rd::rd_kafka_ConfigResource_add_incremental_config(
                req.resource,
                k.as_ptr(),
                rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
                v.as_ptr(),
            );
            if !err.is_null() {
                let message = text(rd::rd_kafka_error_string(err));
                rd::rd_kafka_error_destroy(err);
                return Err(format!("config {}: {message}", k.to_string_lossy()));
            }
        }
        req.options = rd::rd_kafka_AdminOptions_new(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS,
        );
        if req.options.is_null() {
            return Err("librdkafka could not allocate admin options".into());
        }
        let mut errbuf = [0 as c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            req.options,
            timeout_ms,
            errbuf.as_mut_ptr(),
            errbuf.len(),
        );
        let mut resources = [req.resource];
        rd::rd_kafka_IncrementalAlterConfigs(rk, resources.as_mut_ptr(), 1, req.options, req.queue);
        req.event = rd::rd_kafka_queue_poll(req.queue, timeout_ms.saturating_add(1000));
        if req.event.is_null() {
            return Err(format!("no answer from the broker within {timeout:?}"));
        }
        if rd::rd_kafka_event_error(req.event)
            != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            return Err(text(rd::rd_kafka_event_error_string(req.event)));
        }
        let result = rd::rd_kafka_event_IncrementalAlterConfigs_result(req.event);
        if result.is_null() {
            return Err("unexpected answer to IncrementalAlterConfigs".into());
        }
        let mut count = 0usize;
        let list = rd::rd_kafka_IncrementalAlterConfigs_result_resources(result, &mut count);
        for i in 0..count {
            let r = *list.add(i);
            if rd::rd_kafka_ConfigResource_error(r)
                != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
            {
                return Err(text(rd::rd_kafka_ConfigResource_error_string(r)));
            }
        }
    }
    Ok(())
}
