//! Access rule presets for a bucket, as the admin API sets them: who may read its
//! objects, and who may write them (insert, update, delete), planned as row-level
//! security policies on `storage.objects` scoped to the bucket. The policies are
//! Galley's (`galley_storage_<operation>_<bucket hash>`, the preset in their comment);
//! setting rules replaces them, and policies an admin wrote by hand are left alone.

use serde::{Deserialize, Serialize};
use sha2::Digest;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// No policy: only `service_role`.
    None,
    /// Anyone, signed in or not (reading only).
    Public,
    /// Any signed-in user.
    Authenticated,
    /// A signed-in user, under the folder named by their id (`{uid}/...`).
    OwnerFolder,
    /// A signed-in user, the objects they uploaded (`owner_id`).
    Owner,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BucketRules {
    pub read: Preset,
    pub write: Preset,
}

/// Why rules cannot be planned.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidRules(pub String);

/// A string as an SQL literal (standard strings: quotes doubled).
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The name of Galley's policy for `operation` on `bucket`.
pub fn policy_name(bucket: &str, operation: &str) -> String {
    let hash = hex::encode(sha2::Sha256::digest(bucket.as_bytes()));
    format!("galley_storage_{operation}_{}", &hash[..16])
}

const OPERATIONS: [(&str, &str); 4] = [
    ("read", "SELECT"),
    ("insert", "INSERT"),
    ("update", "UPDATE"),
    ("delete", "DELETE"),
];

/// The statements that make `rules` the bucket's policies.
pub fn plan(bucket: &str, rules: &BucketRules) -> Result<Vec<String>, InvalidRules> {
    if rules.write == Preset::Public {
        return Err(InvalidRules(
            "write cannot be public: anonymous writes would let anyone fill the bucket; use authenticated, owner_folder or owner".to_owned(),
        ));
    }
    crate::rules::check_bucket_name(bucket).map_err(|err| InvalidRules(err.message))?;
    let mut statements = Vec::new();
    for (operation, _) in OPERATIONS {
        statements.push(format!(
            "DROP POLICY IF EXISTS \"{}\" ON storage.objects",
            policy_name(bucket, operation)
        ));
    }
    for (operation, command) in OPERATIONS {
        let preset = if operation == "read" {
            rules.read
        } else {
            rules.write
        };
        let (roles, condition) = match preset {
            Preset::None => continue,
            Preset::Public => ("anon, authenticated", String::new()),
            Preset::Authenticated => ("authenticated", String::new()),
            Preset::OwnerFolder => (
                "authenticated",
                " AND (storage.foldername(name))[1] = (SELECT auth.uid()::text)".to_owned(),
            ),
            Preset::Owner => (
                "authenticated",
                " AND owner_id = (SELECT auth.uid()::text)".to_owned(),
            ),
        };
        let expression = format!("(bucket_id = {}{condition})", literal(bucket));
        let clauses = match command {
            "INSERT" => format!("WITH CHECK {expression}"),
            "UPDATE" => format!("USING {expression} WITH CHECK {expression}"),
            _ => format!("USING {expression}"),
        };
        let name = policy_name(bucket, operation);
        statements.push(format!(
            "CREATE POLICY \"{name}\" ON storage.objects FOR {command} TO {roles} {clauses}"
        ));
        let preset = serde_json::to_value(preset).unwrap_or_default();
        let comment = serde_json::json!({ "bucket": bucket, "preset": preset }).to_string();
        statements.push(format!(
            "COMMENT ON POLICY \"{name}\" ON storage.objects IS {}",
            literal(&format!("galley storage rule {comment}"))
        ));
    }
    Ok(statements)
}

/// The rules a bucket's policies say, read back from the policies' comments (`None` for
/// an operation without Galley's policy).
pub const READ_RULES: &str = "SELECT p.polname::text, \
     coalesce(substring(obj_description(p.oid, 'pg_policy') FROM '^galley storage rule (.*)$'), '') \
     FROM pg_policy p WHERE p.polrelid = 'storage.objects'::regclass AND p.polname = ANY ($1)";

/// The rules as the policies `(name, comment)` of a bucket say.
pub fn rules_from(bucket: &str, policies: &[(String, String)]) -> BucketRules {
    let preset_of = |operation: &str| -> Preset {
        let name = policy_name(bucket, operation);
        policies
            .iter()
            .find(|(policy, _)| *policy == name)
            .and_then(|(_, comment)| serde_json::from_str::<serde_json::Value>(comment).ok())
            .and_then(|comment| serde_json::from_value(comment["preset"].clone()).ok())
            .unwrap_or(Preset::None)
    };
    BucketRules {
        read: preset_of("read"),
        write: preset_of("insert"),
    }
}

/// Every policy name Galley's rules for `bucket` may use.
pub fn policy_names(bucket: &str) -> Vec<String> {
    OPERATIONS
        .iter()
        .map(|(operation, _)| policy_name(bucket, operation))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_folder_rules_become_scoped_policies() {
        let statements = plan(
            "it's",
            &BucketRules {
                read: Preset::Public,
                write: Preset::OwnerFolder,
            },
        )
        .expect("plans");
        let name = policy_name("it's", "insert");
        assert!(statements.iter().any(|s| s.contains(&format!(
            "CREATE POLICY \"{name}\" ON storage.objects FOR INSERT TO authenticated WITH CHECK (bucket_id = 'it''s' AND (storage.foldername(name))[1] = (SELECT auth.uid()::text))"
        ))), "{statements:#?}");
        assert!(
            statements.iter().any(
                |s| s.contains("FOR SELECT TO anon, authenticated USING (bucket_id = 'it''s')")
            )
        );
        assert_eq!(
            statements
                .iter()
                .filter(|s| s.starts_with("DROP POLICY IF EXISTS"))
                .count(),
            4
        );
        assert!(
            plan(
                "b",
                &BucketRules {
                    read: Preset::None,
                    write: Preset::Public
                }
            )
            .is_err()
        );
        let none = plan(
            "b",
            &BucketRules {
                read: Preset::None,
                write: Preset::None,
            },
        )
        .expect("plans");
        assert_eq!(none.len(), 4, "only the drops");
    }

    #[test]
    fn rules_read_back_from_comments() {
        let comment = r#"{"bucket":"b","preset":"owner_folder"}"#.to_owned();
        let rules = rules_from("b", &[(policy_name("b", "insert"), comment)]);
        assert_eq!(
            rules,
            BucketRules {
                read: Preset::None,
                write: Preset::OwnerFolder
            }
        );
    }
}
