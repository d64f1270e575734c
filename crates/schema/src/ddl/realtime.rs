//! Publishing a table's changes to Realtime: the `galley_realtime` trigger, which logs
//! each changed row for the instances to deliver (`migrations/V12__realtime_changes.sql`).

use serde::{Deserialize, Serialize};

use crate::catalog::{Relation, RelationKind};
use crate::ddl::Plan;
use crate::error::SchemaError;
use crate::ident::Ident;

/// Whether a table publishes its changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealtimeSetting {
    pub enabled: bool,
}

/// Turns publishing on or off. A table needs a primary key to publish: a subscriber is
/// shown a change only after the row is looked up by its key under the subscriber's
/// row-level security, and a delete is sent as its key.
pub fn plan_realtime(relation: &Relation, setting: &RealtimeSetting) -> Result<Plan, SchemaError> {
    let table = Ident::table(&relation.name)
        .map_err(|err| SchemaError::invalid("table", &err.to_string()))?;
    let qualified = format!("public.{table}");
    if !matches!(
        relation.kind,
        RelationKind::Table | RelationKind::PartitionedTable
    ) {
        return Err(SchemaError::invalid(
            "enabled",
            "only tables publish changes; a view shows the changes of the tables it reads",
        ));
    }
    let statement = if setting.enabled {
        if relation.primary_key.is_empty() {
            return Err(SchemaError::invalid(
                "enabled",
                "a table needs a primary key to publish changes: each change is checked \
                 against the subscriber's access rules by its key",
            ));
        }
        if relation.realtime {
            return Ok(Plan {
                statements: Vec::new(),
                checks: Vec::new(),
            });
        }
        format!(
            "CREATE TRIGGER galley_realtime AFTER INSERT OR UPDATE OR DELETE ON {qualified} \
             FOR EACH ROW EXECUTE FUNCTION galley.realtime_capture()"
        )
    } else {
        format!("DROP TRIGGER IF EXISTS galley_realtime ON {qualified}")
    };
    Ok(Plan {
        statements: vec![statement],
        checks: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use expect_test::expect;
    use serde_json::json;

    use super::*;

    fn todos(primary_key: &[&str]) -> Relation {
        serde_json::from_value(json!({
            "schema": "public", "name": "todos", "kind": "table", "primary_key": primary_key,
            "unique": [], "foreign_keys": [], "rls_enabled": true, "rls_forced": true,
            "comment": null, "columns": []
        }))
        .expect("relation")
    }

    #[test]
    fn publishing_creates_the_capture_trigger_and_stopping_drops_it() {
        let on = plan_realtime(&todos(&["id"]), &RealtimeSetting { enabled: true });
        expect![[r#"
            CREATE TRIGGER galley_realtime AFTER INSERT OR UPDATE OR DELETE ON public."todos" FOR EACH ROW EXECUTE FUNCTION galley.realtime_capture();
        "#]]
        .assert_eq(&on.expect("plans").script());
        let off = plan_realtime(&todos(&["id"]), &RealtimeSetting { enabled: false });
        expect![[r#"
            DROP TRIGGER IF EXISTS galley_realtime ON public."todos";
        "#]]
        .assert_eq(&off.expect("plans").script());
    }

    #[test]
    fn a_table_without_a_primary_key_cannot_publish() {
        let refused = plan_realtime(&todos(&[]), &RealtimeSetting { enabled: true });
        assert!(
            matches!(refused, Err(SchemaError::InvalidDefinition { ref field, .. }) if field == "enabled"),
            "{refused:?}"
        );
    }
}
