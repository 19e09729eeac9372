//! The workspace tools by name, and what a `tools` setting (`readonly`, `all`, `none`, or a
//! list) expands to; the agent builds the tools themselves.

/// Tool names each `tools` setting expands to.
const READONLY: &[&str] = &["read", "ls", "grep", "find"];
const ALL: &[&str] = &["read", "ls", "grep", "find", "write", "edit", "bash"];

/// The configured tools, by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolSet(Vec<String>);

impl ToolSet {
    /// `readonly` (default), `all`, `none`, or a comma-separated list.
    pub fn parse(setting: &str) -> Result<Self, String> {
        let names: Vec<String> = match setting.trim() {
            "readonly" | "" => READONLY.iter().map(|s| s.to_string()).collect(),
            "all" => ALL.iter().map(|s| s.to_string()).collect(),
            "none" => Vec::new(),
            list => {
                list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
            }
        };
        for name in &names {
            if !ALL.contains(&name.as_str()) {
                return Err(format!("tools: unknown tool {name:?} (known: {})", ALL.join(", ")));
            }
        }
        Ok(Self(names))
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// Whether a tool of the set starts processes (and so needs the sandbox).
    pub fn runs_commands(&self) -> bool {
        self.0.iter().any(|name| name == "bash")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_settings() {
        assert_eq!(ToolSet::parse("readonly").unwrap().names().len(), 4);
        assert_eq!(ToolSet::parse("read").unwrap().names(), vec!["read"]);
        assert!(ToolSet::parse("none").unwrap().names().is_empty());
        assert_eq!(ToolSet::parse("all").unwrap().names().len(), 7);
        assert!(ToolSet::parse("read,wget").unwrap_err().contains("unknown tool"));
    }
}
