//! The reusable GitHub Action cannot run here; its YAML must parse, its inputs must be the ones
//! the README documents, and the example workflows must use it.

use yaml_rust2::{Yaml, YamlLoader};

use super::common::repo_root;

fn yaml(rel: &str) -> Yaml {
    let text = std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"));
    assert_eq!(docs.len(), 1, "{rel}: one document");
    docs.remove(0)
}

fn keys(map: &Yaml) -> Vec<String> {
    map.as_hash().expect("a mapping").keys().filter_map(|k| k.as_str().map(str::to_owned)).collect()
}

#[test]
fn the_action_parses_and_its_inputs_are_documented() {
    let action = yaml(".github/actions/golden/action.yml");
    assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
    let inputs = keys(&action["inputs"]);
    assert_eq!(inputs, ["command", "version", "working-directory", "args"]);
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README");
    let section = readme.split("## Pull requests and CI").nth(1).expect("the CI section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let documented: Vec<&str> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(name, _)| name))
        .collect();
    assert_eq!(documented, inputs, "the README's table of inputs");
    for input in &inputs {
        let description = action["inputs"][input.as_str()]["description"].as_str();
        assert!(description.is_some_and(|d| !d.is_empty()), "input {input} has no description");
    }
    // Every step of a composite action names its shell or uses another action.
    for step in action["runs"]["steps"].as_vec().expect("steps") {
        assert!(step["shell"].as_str() == Some("bash") || step["uses"].as_str().is_some(), "{step:?}");
    }
    let text =
        std::fs::read_to_string(repo_root().join(".github/actions/golden/action.yml")).expect("action");
    for needed in
        ["actions/cache@", "cargo install --locked", "--format markdown", "gh api", "<!-- golden-plan"]
    {
        assert!(text.contains(needed), "the action lacks {needed}");
    }
}

#[test]
fn the_example_workflows_use_the_action() {
    for (file, commands) in [("plan.yml", &["plan"][..]), ("apply.yml", &["plan", "apply"])] {
        let workflow = yaml(&format!("examples/github-actions/{file}"));
        let jobs = workflow["jobs"].as_hash().expect("jobs");
        let steps: Vec<&Yaml> = jobs.values().flat_map(|j| j["steps"].as_vec().expect("steps")).collect();
        let used: Vec<&str> = steps
            .iter()
            .filter(|s| s["uses"].as_str().is_some_and(|u| u.contains("/.github/actions/golden@")))
            .filter_map(|s| s["with"]["command"].as_str())
            .collect();
        assert_eq!(used, commands, "{file}");
    }
    let plan = yaml("examples/github-actions/plan.yml");
    let args: Vec<&str> = plan["jobs"]["plan"]["steps"]
        .as_vec()
        .expect("steps")
        .iter()
        .filter_map(|s| s["with"]["args"].as_str())
        .collect();
    assert!(
        args.iter().any(|a| a.contains("--trusted-ref origin/")),
        "plan.yml keeps --trusted-ref: {args:?}"
    );
}
