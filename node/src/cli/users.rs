//! Officer accounts and their grants.

use super::*;

pub(super) async fn user(client: &Client, cmd: UserCmd, web: Option<&str>) -> Result<()> {
    use crate::api::{AddUser, GrantBody, NewUser, UserView};
    match cmd {
        UserCmd::Add {
            name,
            grants,
            enrol,
            password,
            operator,
            json,
        } => {
            let login = match (enrol, password) {
                (true, _) => Some("enrol".to_owned()),
                (_, true) => Some("password".to_owned()),
                _ => None,
            };
            let body = AddUser {
                name,
                grants,
                login,
                operator,
            };
            let u: NewUser = client.post("/v1/users", &body).await?;
            if json {
                let mut value =
                    serde_json::to_value(&u).map_err(|e| Error::Invalid(e.to_string()))?;
                if let (Some(code), Some(object)) = (&u.enrolment_code, value.as_object_mut()) {
                    let base = web.unwrap_or("https://WORKSPACE/").trim_end_matches('/');
                    object.insert(
                        "enrolment_link".into(),
                        format!("{base}/enrol#{code}").into(),
                    );
                }
                return print_json(&value);
            }
            eprintln!(
                "officer {} created; give them this API token (it is not shown again):",
                u.user.name
            );
            say!("{}", u.token);
            if let Some(code) = &u.enrolment_code {
                let base = web.unwrap_or("https://WORKSPACE/").trim_end_matches('/');
                eprintln!(
                    "web enrolment link (valid 72 hours, once; hand it over through a trusted channel):"
                );
                say!("{base}/enrol#{code}");
            }
            if let Some(p) = &u.password {
                eprintln!("one-time web password (the officer chooses a new one at first login):");
                say!("{p}");
            }
            Ok(())
        }
        UserCmd::Grant { name, grant, json } => {
            let u: UserView = client
                .post(
                    &format!("/v1/users/{}/grants", segment(&name)),
                    &GrantBody { grant },
                )
                .await?;
            if json {
                return print_json(&u);
            }
            say!("{}: {}", u.name, format_grants(&u));
            Ok(())
        }
        UserCmd::Revoke { name, group, json } => {
            let u: UserView = client
                .delete(&format!(
                    "/v1/users/{}/grants/{}",
                    segment(&name),
                    segment(&group)
                ))
                .await?;
            if json {
                return print_json(&u);
            }
            say!("{}: {}", u.name, format_grants(&u));
            Ok(())
        }
        UserCmd::List { json } => {
            let users: Vec<UserView> = client.get("/v1/users").await?;
            if json {
                return print_json(&users);
            }
            if users.is_empty() {
                say!("no officers: add one with `liaison user add NAME --grant GROUP:post`");
            }
            for u in &users {
                say!("{:<20} {}", u.name, format_grants(u));
            }
            Ok(())
        }
        UserCmd::Remove { name, json } => {
            let _: serde_json::Value = client
                .delete(&format!("/v1/users/{}", segment(&name)))
                .await?;
            if json {
                return print_json(&serde_json::json!({ "removed": name }));
            }
            say!("removed {name}");
            Ok(())
        }
    }
}

pub(super) fn format_grants(u: &crate::api::UserView) -> String {
    if u.grants.is_empty() {
        return "no grants".to_owned();
    }
    u.grants
        .iter()
        .map(|(g, a)| format!("{g}:{a}"))
        .collect::<Vec<_>>()
        .join(" ")
}
