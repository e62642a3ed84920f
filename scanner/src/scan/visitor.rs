//! The DevTools commands that present a [`VisitorProfile`](crate::profile::VisitorProfile).

use chromiumoxide::cdp::browser_protocol::emulation::{
    SetDeviceMetricsOverrideParams, SetUserAgentOverrideParams, UserAgentBrandVersion,
    UserAgentMetadata,
};

use crate::options::ScanOptions;
use crate::profile::{ClientHints, Presentation};

/// The viewport, with a screen of the same size (a maximized window) and the device's pixel
/// ratio and mobile flag.
pub(super) fn device_metrics(
    options: &ScanOptions,
    shown: &Presentation,
) -> SetDeviceMetricsOverrideParams {
    let mut metrics = SetDeviceMetricsOverrideParams::new(
        i64::from(options.viewport_width),
        i64::from(options.viewport_height),
        shown.device_scale_factor,
        shown.mobile,
    );
    metrics.screen_width = Some(i64::from(options.viewport_width));
    metrics.screen_height = Some(i64::from(options.viewport_height));
    metrics
}

/// User-Agent, `Accept-Language`, `navigator.platform` and the client hints (the Emulation
/// domain's override: the Network domain's leaves `navigator.platform` alone).
pub(super) fn user_agent_override(
    options: &ScanOptions,
    shown: &Presentation,
) -> SetUserAgentOverrideParams {
    let mut params = SetUserAgentOverrideParams::new(
        options
            .user_agent
            .clone()
            .unwrap_or_else(|| shown.user_agent.clone()),
    );
    params.accept_language = Some(shown.languages.clone());
    params.platform = Some(shown.platform.clone());
    params.user_agent_metadata = Some(metadata(&shown.client_hints));
    params
}

fn metadata(hints: &ClientHints) -> UserAgentMetadata {
    let brands = |list: &[(String, String)]| {
        list.iter()
            .map(|(brand, version)| UserAgentBrandVersion::new(brand.clone(), version.clone()))
            .collect::<Vec<_>>()
    };
    UserAgentMetadata {
        brands: Some(brands(&hints.brands)),
        full_version_list: Some(brands(&hints.full_version_list)),
        platform: hints.platform.clone(),
        platform_version: hints.platform_version.clone(),
        architecture: hints.architecture.clone(),
        model: hints.model.clone(),
        mobile: hints.mobile,
        bitness: Some(hints.bitness.clone()),
        wow64: Some(false),
        form_factors: Some(vec![hints.form_factor.clone()]),
    }
}

/// The same override for a worker's own DevTools session (workers send their own requests, with
/// their own User-Agent), as JSON parameters of `Network.setUserAgentOverride` (workers have no
/// Emulation domain; the parameters are the same).
pub(super) fn user_agent_override_json(
    options: &ScanOptions,
    shown: &Presentation,
) -> serde_json::Value {
    serde_json::to_value(user_agent_override(options, shown)).unwrap_or_default()
}
