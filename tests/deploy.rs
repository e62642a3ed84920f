//! `docker/compose.yaml` read as data: container engines cannot start containers on the machines
//! that run these tests, so what the file promises is checked here and the topology it describes
//! is run natively by `tests/service/cluster.rs`.

use std::collections::BTreeSet;

use clap::CommandFactory;
use yaml_rust2::{Yaml, YamlLoader};

const COMPOSE: &str = include_str!("../docker/compose.yaml");
const ENV_EXAMPLE: &str = include_str!("../docker/.env.example");

fn compose() -> Yaml {
    YamlLoader::load_from_str(COMPOSE)
        .expect("compose.yaml is YAML")
        .remove(0)
}

fn services(compose: &Yaml) -> Vec<(String, Yaml)> {
    compose["services"]
        .as_hash()
        .expect("compose.yaml has services")
        .iter()
        .map(|(name, service)| (name.as_str().unwrap().to_string(), service.clone()))
        .collect()
}

/// The variables a service's `environment` sets (map or list form).
fn environment(service: &Yaml) -> Vec<String> {
    match &service["environment"] {
        Yaml::Hash(map) => map
            .keys()
            .map(|k| k.as_str().unwrap().to_string())
            .collect(),
        Yaml::Array(list) => list
            .iter()
            .map(|entry| {
                let entry = entry.as_str().unwrap();
                entry.split('=').next().unwrap().to_string()
            })
            .collect(),
        Yaml::BadValue => Vec::new(),
        other => panic!("environment is neither a map nor a list: {other:?}"),
    }
}

/// Every `SITEWARD_*` variable siteward reads: the app's settings and every command's `env`.
fn known_variables() -> BTreeSet<String> {
    let mut known: BTreeSet<String> = siteward::config::SETTINGS
        .iter()
        .map(|(name, _, _)| format!("SITEWARD_{}", name.to_ascii_uppercase()))
        .collect();
    fn walk(command: &clap::Command, known: &mut BTreeSet<String>) {
        for argument in command.get_arguments() {
            if let Some(env) = argument.get_env() {
                known.insert(env.to_string_lossy().into_owned());
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, known);
        }
    }
    walk(&siteward::cli::Cli::command(), &mut known);
    known
}

#[test]
fn every_siteward_variable_compose_sets_is_one_siteward_reads() {
    let known = known_variables();
    assert!(known.contains("SITEWARD_RUNNER_TOKEN") && known.contains("SITEWARD_S3_BUCKET"));
    let mut checked = 0;
    for (name, service) in services(&compose()) {
        for variable in environment(&service) {
            if variable.starts_with("SITEWARD_") {
                assert!(
                    known.contains(&variable),
                    "service `{name}` sets {variable}, which siteward does not read"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 10, "only {checked} variables found");
}

#[test]
fn every_service_has_a_health_check_and_the_app_is_checked_on_readyz() {
    let services = services(&compose());
    for (name, service) in &services {
        let check = &service["healthcheck"];
        assert!(
            !check["test"].is_badvalue(),
            "service `{name}` has no health check"
        );
        assert!(
            check["disable"].as_bool() != Some(true),
            "service `{name}` disables its health check"
        );
    }
    let (_, app) = services
        .iter()
        .find(|(name, service)| service["command"][0].as_str() == Some("serve") || name == "app")
        .expect("a serve service");
    let test: Vec<&str> = app["healthcheck"]["test"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(
        test.iter().any(|part| part.ends_with("/readyz")),
        "{test:?}"
    );
}

#[test]
fn the_runner_gets_no_database_master_key_or_bucket_credential() {
    let services = services(&compose());
    let (_, runner) = services
        .iter()
        .find(|(_, service)| service["command"][0].as_str() == Some("runner"))
        .expect("a runner service");
    assert!(
        runner["env_file"].is_badvalue(),
        "an env_file would hand the runner every secret"
    );
    for variable in environment(runner) {
        assert!(
            !(variable.contains("DATABASE")
                || variable.contains("MASTER_KEY")
                || variable.starts_with("SITEWARD_S3_")
                || variable.starts_with("POSTGRES")
                || variable.starts_with("AWS_")
                || variable == "SITEWARD_METRICS_TOKEN"),
            "the runner gets {variable}"
        );
    }
    assert!(
        environment(runner).contains(&"SITEWARD_APP_URL".to_string())
            && environment(runner).contains(&"SITEWARD_RUNNER_TOKEN".to_string())
    );
    // Not on the network of the database and the object store, not privileged, not root, and
    // scalable (no fixed name or host port).
    let networks: Vec<&str> = runner["networks"]
        .as_vec()
        .expect("the runner names its networks")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    let (_, postgres) = services
        .iter()
        .find(|(_, s)| {
            s["image"]
                .as_str()
                .is_some_and(|image| image.starts_with("postgres"))
        })
        .expect("a postgres service");
    for network in postgres["networks"].as_vec().unwrap() {
        assert!(
            !networks.contains(&network.as_str().unwrap()),
            "the runner shares {network:?} with PostgreSQL"
        );
    }
    assert!(runner["privileged"].as_bool() != Some(true));
    assert!(runner["cap_add"].is_badvalue(), "no added capabilities");
    let user = runner["user"].as_str().expect("the runner names its user");
    assert!(
        !user.starts_with("0") && !user.starts_with("root"),
        "{user}"
    );
    assert!(runner["container_name"].is_badvalue() && runner["ports"].is_badvalue());
    assert_eq!(
        runner["init"].as_bool(),
        Some(true),
        "tini reaps Chromium's children"
    );
}

#[test]
fn the_env_example_lists_every_variable_compose_substitutes() {
    let listed: BTreeSet<&str> = ENV_EXAMPLE
        .lines()
        .filter_map(|line| line.trim_start_matches("# ").split_once('='))
        .map(|(name, _)| name.trim())
        .collect();
    let mut substituted = BTreeSet::new();
    let mut rest = COMPOSE;
    while let Some(start) = rest.find("${") {
        // `$${…}` is an escaped dollar: the container's shell expands it, not Compose.
        let escaped = rest[..start].ends_with('$');
        let name: String = rest[start + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !escaped && !name.is_empty() {
            substituted.insert(name);
        }
        rest = &rest[start + 2..];
    }
    assert!(substituted.len() > 5, "{substituted:?}");
    for name in &substituted {
        assert!(
            listed.contains(name.as_str()),
            "docker/.env.example does not list {name}"
        );
    }
}
