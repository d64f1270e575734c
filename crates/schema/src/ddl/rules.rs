//! Access rules → row-level security policies and the grants that go with them.
//!
//! Setting a table's rules replaces every rule Galley made for it: the plan drops the
//! `galley_*` policies, revokes the API roles' privileges, then creates what the rules
//! say. A table with no rules stays reachable by `service_role` only.

use serde::{Deserialize, Serialize};

use crate::catalog::Relation;
use crate::ddl::Plan;
use crate::error::SchemaError;
use crate::ident::Ident;

/// The rules of one table, one per operation; an operation left out is `nobody`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRules {
    #[serde(default)]
    pub select: Rule,
    #[serde(default)]
    pub insert: Rule,
    #[serde(default)]
    pub update: Rule,
    #[serde(default)]
    pub delete: Rule,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "preset", deny_unknown_fields)]
pub enum Rule {
    /// Anyone, signed in or not.
    Public,
    /// Any signed-in user.
    SignedIn,
    /// Signed-in users, on rows whose `column` equals their user id.
    Owner { column: Ident },
    /// A SQL boolean expression, for signed-in and anonymous requests alike; `auth.uid()`
    /// and `auth.jwt()` are available.
    Custom { expression: String },
    /// No one but `service_role`.
    #[default]
    Nobody,
}

#[derive(Clone, Copy)]
enum Operation {
    Select,
    Insert,
    Update,
    Delete,
}

impl Operation {
    fn sql(self) -> &'static str {
        match self {
            Operation::Select => "SELECT",
            Operation::Insert => "INSERT",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }

    fn policy_name(self) -> &'static str {
        match self {
            Operation::Select => "\"galley_select\"",
            Operation::Insert => "\"galley_insert\"",
            Operation::Update => "\"galley_update\"",
            Operation::Delete => "\"galley_delete\"",
        }
    }
}

/// Plans the replacement of `relation`'s rules by `rules`.
pub fn plan_rules(relation: &Relation, rules: &AccessRules) -> Result<Plan, SchemaError> {
    let table = Ident::table(&relation.name)
        .map_err(|err| SchemaError::invalid("table", &err.to_string()))?;
    let qualified = format!("public.{table}");
    let mut statements = Vec::new();
    for operation in [
        Operation::Select,
        Operation::Insert,
        Operation::Update,
        Operation::Delete,
    ] {
        statements.push(format!(
            "DROP POLICY IF EXISTS {} ON {qualified}",
            operation.policy_name()
        ));
    }
    statements.push(format!(
        "REVOKE ALL ON {qualified} FROM anon, authenticated"
    ));
    // Forced on creation; forced again, in case someone turned it off by hand.
    statements.push(format!("ALTER TABLE {qualified} ENABLE ROW LEVEL SECURITY"));
    statements.push(format!("ALTER TABLE {qualified} FORCE ROW LEVEL SECURITY"));
    for (operation, rule, field) in [
        (Operation::Select, &rules.select, "select"),
        (Operation::Insert, &rules.insert, "insert"),
        (Operation::Update, &rules.update, "update"),
        (Operation::Delete, &rules.delete, "delete"),
    ] {
        let (roles, condition) = match rule {
            Rule::Nobody => continue,
            Rule::Public => ("anon, authenticated", "true".to_owned()),
            Rule::SignedIn => ("authenticated", "true".to_owned()),
            Rule::Owner { column } => {
                let Some(found) = relation.column(column.as_str()) else {
                    return Err(SchemaError::invalid(
                        field,
                        &format!("there is no column `{}`", column.as_str()),
                    ));
                };
                if found.data_type != "uuid" {
                    return Err(SchemaError::invalid(
                        field,
                        &format!(
                            "the owner column `{}` must be uuid, not {}",
                            column.as_str(),
                            found.data_type
                        ),
                    ));
                }
                // `(SELECT auth.uid())` is evaluated once per statement (an InitPlan), not
                // once per row: a scan under this rule costs what the scan costs.
                ("authenticated", format!("{column} = (SELECT auth.uid())"))
            }
            Rule::Custom { expression } => {
                ("anon, authenticated", single_expression(expression, field)?)
            }
        };
        let clauses = match operation {
            Operation::Select | Operation::Delete => format!("USING ({condition})"),
            Operation::Insert => format!("WITH CHECK ({condition})"),
            Operation::Update => format!("USING ({condition}) WITH CHECK ({condition})"),
        };
        statements.push(format!(
            "CREATE POLICY {} ON {qualified} FOR {} TO {roles} {clauses}",
            operation.policy_name(),
            operation.sql()
        ));
        statements.push(format!(
            "GRANT {} ON {qualified} TO {roles}",
            operation.sql()
        ));
    }
    Ok(Plan {
        statements,
        checks: Vec::new(),
    })
}

/// Accepts an expression only if it stays one parenthesised expression: parentheses
/// balance outside string literals and quoted names, and there is no `;` or comment. Its
/// meaning is PostgreSQL's to check when the plan runs.
pub(crate) fn single_expression(expression: &str, field: &str) -> Result<String, SchemaError> {
    let refuse = |why: &str| SchemaError::invalid(field, &format!("the custom expression {why}"));
    if expression.trim().is_empty() {
        return Err(refuse("is empty"));
    }
    if expression.contains('\0') {
        return Err(refuse("contains a NUL character"));
    }
    let mut depth = 0i32;
    let mut chars = expression.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                // Skip to the closing quote; a doubled quote is an escaped one.
                loop {
                    match chars.next() {
                        Some(q) if q == c => {
                            if chars.peek() == Some(&c) {
                                chars.next();
                            } else {
                                break;
                            }
                        }
                        Some(_) => {}
                        None => return Err(refuse("has an unterminated quote")),
                    }
                }
            }
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(refuse("closes a parenthesis it did not open"));
                }
            }
            ';' => return Err(refuse("must not contain `;`")),
            '-' if chars.peek() == Some(&'-') => return Err(refuse("must not contain comments")),
            '/' if chars.peek() == Some(&'*') => return Err(refuse("must not contain comments")),
            '$' => return Err(refuse("must not contain dollar quoting")),
            _ => {}
        }
    }
    if depth != 0 {
        return Err(refuse("has unbalanced parentheses"));
    }
    Ok(expression.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use expect_test::expect;
    use serde_json::json;

    use super::*;

    fn todos() -> Relation {
        serde_json::from_value(json!({
            "schema": "public", "name": "todos", "kind": "table", "primary_key": ["id"], "unique": [],
            "foreign_keys": [], "rls_enabled": true, "rls_forced": true, "comment": null,
            "columns": [
                {"name": "id", "position": 1, "data_type": "uuid", "nullable": false, "default": null,
                 "identity": false, "generated": false, "comment": null},
                {"name": "owner", "position": 2, "data_type": "uuid", "nullable": true, "default": null,
                 "identity": false, "generated": false, "comment": null},
                {"name": "title", "position": 3, "data_type": "text", "nullable": true, "default": null,
                 "identity": false, "generated": false, "comment": null}
            ]
        }))
        .expect("relation")
    }

    #[test]
    fn presets_compile_to_policies_and_grants() {
        let rules: AccessRules = serde_json::from_value(json!({
            "select": {"preset": "public"},
            "insert": {"preset": "owner", "column": "owner"},
            "update": {"preset": "owner", "column": "owner"},
            "delete": {"preset": "custom", "expression": "owner = auth.uid() AND title <> 'keep'"}
        }))
        .expect("rules");
        expect![[r#"
            DROP POLICY IF EXISTS "galley_select" ON public."todos";
            DROP POLICY IF EXISTS "galley_insert" ON public."todos";
            DROP POLICY IF EXISTS "galley_update" ON public."todos";
            DROP POLICY IF EXISTS "galley_delete" ON public."todos";
            REVOKE ALL ON public."todos" FROM anon, authenticated;
            ALTER TABLE public."todos" ENABLE ROW LEVEL SECURITY;
            ALTER TABLE public."todos" FORCE ROW LEVEL SECURITY;
            CREATE POLICY "galley_select" ON public."todos" FOR SELECT TO anon, authenticated USING (true);
            GRANT SELECT ON public."todos" TO anon, authenticated;
            CREATE POLICY "galley_insert" ON public."todos" FOR INSERT TO authenticated WITH CHECK ("owner" = (SELECT auth.uid()));
            GRANT INSERT ON public."todos" TO authenticated;
            CREATE POLICY "galley_update" ON public."todos" FOR UPDATE TO authenticated USING ("owner" = (SELECT auth.uid())) WITH CHECK ("owner" = (SELECT auth.uid()));
            GRANT UPDATE ON public."todos" TO authenticated;
            CREATE POLICY "galley_delete" ON public."todos" FOR DELETE TO anon, authenticated USING (owner = auth.uid() AND title <> 'keep');
            GRANT DELETE ON public."todos" TO anon, authenticated;
        "#]]
        .assert_eq(&plan_rules(&todos(), &rules).expect("plans").script());
    }

    #[test]
    fn no_rules_means_service_role_only() {
        let plan = plan_rules(&todos(), &AccessRules::default()).expect("plans");
        assert!(
            plan.statements
                .iter()
                .all(|s| !s.starts_with("GRANT") && !s.starts_with("CREATE POLICY"))
        );
    }

    #[test]
    fn owner_columns_must_exist_and_be_uuid() {
        for column in ["missing", "title"] {
            let rules: AccessRules =
                serde_json::from_value(json!({"select": {"preset": "owner", "column": column}}))
                    .expect("rules");
            assert!(plan_rules(&todos(), &rules).is_err(), "{column}");
        }
    }

    #[test]
    fn custom_expressions_cannot_escape_their_parentheses() {
        for expression in [
            "true) WITH CHECK (true",
            "true); DROP TABLE todos; --",
            "true -- comment",
            "true /* c */",
            "(true",
            "$$x$$ = 'x'",
            "' unterminated",
            "",
        ] {
            assert!(
                single_expression(expression, "select").is_err(),
                "{expression:?} accepted"
            );
        }
        assert!(single_expression("title = 'a)b' AND (owner = auth.uid())", "select").is_ok());
        assert!(single_expression("\"weird)name\" IS NOT NULL", "select").is_ok());
    }
}
