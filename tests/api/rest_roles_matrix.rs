//! Every REST route × every default role (CONTRACT §2, §6): who gets 200, who gets
//! 403, and anonymous callers 401 on authenticated routes; and every authenticated
//! route refuses a revoked or an expired token. Table-driven.

use crate::common;

use common::*;

/// The callers, one per default role plus nobody.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Anonymous,
    Guest,
    Bot,
    User,
    Admin,
}

use Who::*;

/// The order the callers run a route in: the admin last, so a route that changes
/// something (delete, roles) does it after everyone else was refused.
const ORDER: [Who; 5] = [Anonymous, Guest, Bot, User, Admin];

/// What each caller gets from a route, in the order anonymous, guest, bot, user, admin.
struct Case {
    method: Method,
    path: String,
    body: Option<Value>,
    want: [u16; 5],
    /// The 200 answer is not a JSON `{"success": true, …}` body (Prometheus text).
    plain: bool,
    /// The route declares its permission (CONTRACT §2 v2): its 403 says
    /// `[error-unauthorized]`, not `unauthorized`.
    declared: bool,
}

/// The same case, for a route that declares its permission.
fn declared(case: Case) -> Case {
    Case {
        declared: true,
        ..case
    }
}

fn want_of(case: &Case, who: Who) -> u16 {
    case.want[ORDER.iter().position(|w| *w == who).unwrap()]
}

const ALL: [u16; 5] = [401, 200, 200, 200, 200];
const ADMIN_ONLY: [u16; 5] = [401, 403, 403, 403, 200];
const PAT_HOLDERS: [u16; 5] = [401, 403, 403, 200, 200];
/// Refused inside the handler with a 400, as Rocket.Chat's saveUser and token methods do.
const ADMIN_ONLY_400: [u16; 5] = [401, 400, 400, 400, 200];
const PAT_HOLDERS_400: [u16; 5] = [401, 400, 400, 200, 200];
/// Only one's own records: a missing or another user's one is a 400 for everyone.
const OWN_ONLY_400: [u16; 5] = [401, 400, 400, 400, 400];
const PUBLIC: [u16; 5] = [200, 200, 200, 200, 200];
/// Admin-only, called with an id that names nothing: the admin gets the 400.
const ADMIN_ONLY_UNKNOWN: [u16; 5] = [401, 403, 403, 403, 400];

fn get(path: &str, want: [u16; 5]) -> Case {
    Case {
        method: Method::GET,
        path: path.to_string(),
        body: None,
        want,
        plain: false,
        declared: false,
    }
}

fn post(path: &str, body: Value, want: [u16; 5]) -> Case {
    Case {
        method: Method::POST,
        path: path.to_string(),
        body: Some(body),
        want,
        plain: false,
        declared: false,
    }
}

/// Every route, with what each default role gets. `target` and `victim` are users the
/// admin-only calls change and delete; `customs` two custom statuses to update and delete.
/// `logged` a user with a session, which the admin logs out.
fn cases(target: &str, victim: &str, logged: &str, customs: &[String; 2]) -> Vec<Case> {
    let frame = |method: &str| json!({"message": json!({"msg": "method", "id": "1", "method": method, "params": []}).to_string()});
    vec![
        get("/api/info", PUBLIC),
        get("/api/health", PUBLIC),
        Case {
            plain: true,
            ..get("/metrics", PUBLIC)
        },
        get("me", ALL),
        // Status routes.
        post(
            "users.setStatus",
            json!({"status": "away", "message": "mine"}),
            ALL,
        ),
        post(
            "users.setStatus",
            json!({"userId": target, "status": "busy", "message": "theirs"}),
            ADMIN_ONLY,
        ),
        post(
            "users.setStatus",
            json!({"username": "target", "status": "away"}),
            ADMIN_ONLY,
        ),
        get("users.getStatus", ALL),
        get(&format!("users.getStatus?userId={target}"), ALL),
        get("users.getPresence", ALL),
        get(&format!("users.getPresence?userId={target}"), ALL),
        get("users.presence", ALL),
        get(&format!("users.presence?ids={target}"), ALL),
        get("users.info?username=target", ALL),
        get("users.statusHistory", ALL),
        get(&format!("users.statusHistory?userId={target}"), ADMIN_ONLY),
        // Status claims: external ones on oneself for everyone; another user's claims
        // and internal claims with manage-status-claims (admin).
        post(
            "statusd.claims.set",
            json!({"status": "busy", "text": "cal", "statusId": "m-1"}),
            ALL,
        ),
        post(
            "statusd.claims.set",
            json!({"status": "busy", "statusId": "m-2", "source": "internal"}),
            ADMIN_ONLY,
        ),
        post(
            "statusd.claims.set",
            json!({"userId": target, "status": "busy", "text": "cal", "statusId": "m-3"}),
            ADMIN_ONLY,
        ),
        post("statusd.claims.end", json!({"statusId": "m-1"}), ALL),
        post(
            "statusd.claims.end",
            json!({"userId": target, "statusId": "m-3"}),
            ADMIN_ONLY,
        ),
        get("statusd.claims.get", ALL),
        get(&format!("statusd.claims.get?userId={target}"), ADMIN_ONLY),
        post("statusd.claims.clear", json!({}), ALL),
        post(
            "statusd.claims.clear",
            json!({"username": "victim"}),
            ADMIN_ONLY,
        ),
        // Do-not-disturb schedules: everyone, on their own schedule only (no route
        // names another user).
        post(
            "statusd.dnd.set",
            json!({"timeZone": "UTC", "ranges": [{"days": ["sun"], "start": "01:00", "end": "02:00"}]}),
            ALL,
        ),
        get("statusd.dnd.get", ALL),
        post("statusd.dnd.clear", json!({}), ALL),
        // Calendar events: one's own only; another's (or a missing one) is a 400.
        post(
            "calendar-events.create",
            json!({"startTime": "2030-01-02T10:00:00Z", "subject": "m", "description": ""}),
            ALL,
        ),
        post(
            "calendar-events.import",
            json!({"startTime": "2030-01-02T10:00:00Z", "externalId": "m-1",
                   "subject": "m", "description": ""}),
            ALL,
        ),
        get("calendar-events.list?date=2030-01-02", ALL),
        get("calendar-events.info?id=someone-elses", OWN_ONLY_400),
        post(
            "calendar-events.update",
            json!({"eventId": "someone-elses", "startTime": "2030-01-02T10:00:00Z",
                   "subject": "m", "description": ""}),
            OWN_ONLY_400,
        ),
        post(
            "calendar-events.delete",
            json!({"eventId": "someone-elses"}),
            OWN_ONLY_400,
        ),
        // Connected calendars: one's own; another user's with manage-status-claims;
        // another's calendar (or a missing one) is a 400.
        post(
            "statusd.calendars.connect",
            json!({"url": "https://calendar.example.invalid/team.ics"}),
            ALL,
        ),
        post(
            "statusd.calendars.connect",
            json!({"username": "victim", "url": "https://calendar.example.invalid/v.ics"}),
            ADMIN_ONLY,
        ),
        get("statusd.calendars.list", ALL),
        get(
            &format!("statusd.calendars.list?userId={target}"),
            ADMIN_ONLY,
        ),
        post(
            "statusd.calendars.update",
            json!({"calendarId": "someone-elses", "includeFree": true}),
            OWN_ONLY_400,
        ),
        post(
            "statusd.calendars.sync",
            json!({"calendarId": "someone-elses"}),
            OWN_ONLY_400,
        ),
        post(
            "statusd.calendars.disconnect",
            json!({"calendarId": "someone-elses"}),
            OWN_ONLY_400,
        ),
        // User administration.
        declared(get("users.list", ALL)),
        post(
            "users.create",
            json!({"email": "made@example.com", "name": "Made", "password": "made-pass-1", "username": "made"}),
            ADMIN_ONLY_400,
        ),
        post(
            "users.update",
            json!({"userId": target, "data": {"name": "Renamed"}}),
            ADMIN_ONLY_400,
        ),
        declared(post("users.delete", json!({"userId": victim}), ADMIN_ONLY)),
        // Preferences: one's own; another's with edit-other-user-info (a 400).
        post(
            "users.setPreferences",
            json!({"data": {"enableAutoAway": false}}),
            ALL,
        ),
        post(
            "users.setPreferences",
            json!({"userId": target, "data": {"idleTimeLimit": 60}}),
            ADMIN_ONLY_400,
        ),
        get("users.getPreferences", ALL),
        declared(post(
            "users.setActiveStatus",
            json!({"userId": target, "activeStatus": true}),
            ADMIN_ONLY,
        )),
        post("users.logout", json!({"userId": logged}), ADMIN_ONLY),
        declared(get("users.listByStatus", ALL)),
        // Presence administration (manage-user-status: admin).
        declared(get("presence.getConnections", ADMIN_ONLY)),
        declared(post("presence.enableBroadcast", json!({}), ADMIN_ONLY)),
        // Webhooks (statusd's own routes): manage-outgoing-integrations.
        declared(post(
            "statusd.webhooks.create",
            json!({"url": "http://127.0.0.1:9/hook", "events": ["status.changed"]}),
            ADMIN_ONLY,
        )),
        declared(get("statusd.webhooks.list", ADMIN_ONLY)),
        declared(post(
            "statusd.webhooks.update",
            json!({"webhookId": "unknown", "active": false}),
            ADMIN_ONLY_UNKNOWN,
        )),
        declared(post(
            "statusd.webhooks.delete",
            json!({"webhookId": "unknown"}),
            ADMIN_ONLY_UNKNOWN,
        )),
        declared(get(
            "statusd.webhooks.deliveries?webhookId=unknown",
            ADMIN_ONLY_UNKNOWN,
        )),
        // The REST bridge to the DDP methods.
        post(
            "method.call/license:getModules",
            frame("license:getModules"),
            ALL,
        ),
        post(
            "method.callAnon/license:getModules",
            frame("license:getModules"),
            PUBLIC,
        ),
        // Settings.
        get("settings/Accounts_AllowInvisibleStatusOption", ADMIN_ONLY),
        post(
            "settings/Accounts_AllowInvisibleStatusOption",
            json!({"value": true}),
            ADMIN_ONLY,
        ),
        get("settings.public", PUBLIC),
        // Permissions and roles.
        get("permissions.listAll", ALL),
        post(
            "permissions.update",
            json!({"permissions": [{"_id": "manage-user-status", "roles": ["admin"]}]}),
            ADMIN_ONLY,
        ),
        get("roles.list", ALL),
        get("roles.getUsersInPublicRoles", ALL),
        post(
            "roles.addUserToRole",
            json!({"roleId": "bot", "username": "target"}),
            ADMIN_ONLY,
        ),
        post(
            "roles.removeUserFromRole",
            json!({"roleId": "bot", "username": "target"}),
            ADMIN_ONLY,
        ),
        // Custom statuses (manage-user-status: admin).
        get("custom-user-status.list", ALL),
        post(
            "custom-user-status.create",
            json!({"name": "Matrix C", "statusType": "busy"}),
            ADMIN_ONLY,
        ),
        post(
            "custom-user-status.update",
            json!({"_id": customs[0], "name": "Matrix A2", "statusType": "away"}),
            ADMIN_ONLY,
        ),
        post(
            "custom-user-status.delete",
            json!({"customUserStatusId": customs[1]}),
            ADMIN_ONLY,
        ),
        // Personal access tokens (create-personal-access-tokens: admin, user).
        post(
            "users.generatePersonalAccessToken",
            json!({"tokenName": "matrix"}),
            PAT_HOLDERS_400,
        ),
        declared(get("users.getPersonalAccessTokens", PAT_HOLDERS)),
        post(
            "users.regeneratePersonalAccessToken",
            json!({"tokenName": "matrix"}),
            PAT_HOLDERS_400,
        ),
        post(
            "users.removePersonalAccessToken",
            json!({"tokenName": "matrix"}),
            PAT_HOLDERS_400,
        ),
    ]
}

/// Routes that declare their permissions (Rocket.Chat's `permissionsRequired`): their
/// 403 body names `[error-unauthorized]` (CONTRACT §2 as corrected by issue 15).
fn declares_permission(path: &str) -> bool {
    path.starts_with("settings/") || path.starts_with("roles.") || path == "permissions.update"
}

/// Runs one case; a plain-text answer comes back as `Value::String`.
async fn call(srv: &Server, case: &Case, s: Option<&Session>) -> Reply {
    let body = case.body.as_ref().map(|b| serde_json::to_vec(b).unwrap());
    let headers = [("Content-Type", "application/json")];
    if case.plain {
        let (status, h, text) = srv
            .request_text(case.method.clone(), &case.path, s, &headers, body)
            .await;
        return (status, h, Value::String(text));
    }
    srv.request(case.method.clone(), &case.path, s, &headers, body)
        .await
}

async fn make_custom_status(srv: &Server, admin: &Session, name: &str) -> String {
    let r = srv
        .post_json(
            "custom-user-status.create",
            Some(admin),
            json!({"name": name, "statusType": "away"}),
        )
        .await;
    assert_status(&r, 200);
    r.2["customUserStatus"]["_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn every_route_for_every_default_role() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let user = srv.create_user("role-user", "user-pass-1", &["user"]).await;
    let bot = srv.create_user("role-bot", "bot-pass-1", &["bot"]).await;
    let guest = srv
        .create_user("role-guest", "guest-pass-1", &["guest"])
        .await;
    let target = srv
        .create_user_only("target", "target-pass-1", &["user"])
        .await;
    let victim = srv
        .create_user_only("victim", "victim-pass-1", &["user"])
        .await;
    let logged = srv.create_user("logged", "logged-pass-1", &["user"]).await;
    let session = |who: Who| -> Option<Session> {
        match who {
            Anonymous => None,
            Guest => Some(guest.clone()),
            Bot => Some(bot.clone()),
            User => Some(user.clone()),
            Admin => Some(admin.clone()),
        }
    };

    let customs = [
        make_custom_status(&srv, &admin, "Matrix A").await,
        make_custom_status(&srv, &admin, "Matrix B").await,
    ];
    let cases = cases(&target, &victim, &logged.user_id, &customs);

    let mut failures = Vec::new();
    for case in &cases {
        for who in ORDER {
            let s = session(who);
            let r = call(&srv, case, s.as_ref()).await;
            let want = want_of(case, who);
            let got = r.0.as_u16();
            let body_ok = match want {
                401 => r.2 == body_401(),
                403 if case.declared || declares_permission(&case.path) => {
                    r.2 == body_403_declared()
                }
                403 => r.2 == body_403(),
                // Rocket.Chat's calendar routes answer a bare failure (no errorType).
                400 => {
                    r.2["success"] == false
                        && (r.2["errorType"].is_string()
                            || case.path.starts_with("calendar-events."))
                }
                _ => case.plain || r.2["success"] == true,
            };
            if got != want || !body_ok {
                failures.push(format!(
                    "{} {} as {who:?}: want {want}, got {got} {}",
                    case.method, case.path, r.2
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} calls answered wrongly:\n{}",
        failures.len(),
        cases.len() * ORDER.len(),
        failures.join("\n")
    );

    // The effects of the admin-only calls happened exactly once.
    assert_eq!(srv.info_of(&target).await["name"], "Renamed");
    let st = srv.status_of(&target).await;
    assert_eq!(st["status"], "away", "{st}");
    let r = srv
        .get(&format!("users.info?userId={victim}"), Some(&admin))
        .await;
    assert_reply(
        &r,
        400,
        json!({"success": false, "error": "User not found."}),
    );

    assert_reply(&srv.get("me", Some(&logged)).await, 401, body_401());

    // Last: logout, which every role may do (and which ends the sessions).
    for who in ORDER {
        let s = session(who);
        let r = srv.post_json("logout", s.as_ref(), json!({})).await;
        let want = if who == Anonymous { 401 } else { 200 };
        assert_eq!(r.0.as_u16(), want, "logout as {who:?}: {}", r.2);
        if let Some(s) = s {
            assert_reply(&srv.get("me", Some(&s)).await, 401, body_401());
        }
    }
}

/// Bots hold api-bypass-rate-limit; guests and users do not.
#[tokio::test]
async fn rate_limit_bypass_by_role() {
    let srv = Server::start_with(&[("OVERWRITE_SETTING_API_Enable_Rate_Limiter", "true")]).await;
    let admin = srv.admin().await;
    let user = srv.create_user("rl-user", "user-pass-1", &["user"]).await;
    let bot = srv.create_user("rl-bot", "bot-pass-1", &["bot"]).await;
    let guest = srv
        .create_user("rl-guest", "guest-pass-1", &["guest"])
        .await;
    // Lowered after the logins (which share one IP budget).
    srv.set_setting("API_Enable_Rate_Limiter_Limit_Calls_Default", json!(3))
        .await;
    for (name, s, exempt) in [
        ("admin", &admin, true),
        ("bot", &bot, true),
        ("user", &user, false),
        ("guest", &guest, false),
    ] {
        let mut limited = false;
        for _ in 0..5 {
            let r = srv.get("users.getStatus", Some(s)).await;
            if r.0 == 429 {
                assert_too_many(&r, 60);
                limited = true;
            } else {
                assert_eq!(r.0.as_u16(), 200, "{name}: {}", r.2);
            }
        }
        assert_eq!(limited, !exempt, "{name}: limited={limited}");
    }
}

/// A token revoked by a logout, a login token past `Accounts_LoginExpiration`, and a
/// token of a disabled user: every authenticated route answers 401 to each.
#[tokio::test]
async fn every_authenticated_route_refuses_revoked_and_expired_tokens() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let admin_pat = srv.admin_pat().await;
    let target = srv
        .create_user_only("target", "target-pass-1", &["user"])
        .await;
    let victim = srv
        .create_user_only("victim", "victim-pass-1", &["user"])
        .await;
    let customs = [
        make_custom_status(&srv, &admin, "Matrix A").await,
        make_custom_status(&srv, &admin, "Matrix B").await,
    ];
    let revoked = srv
        .create_user("revoked", "revoked-pass-1", &["admin"])
        .await;
    assert_status(
        &srv.post_json("logout", Some(&revoked), json!({})).await,
        200,
    );
    let disabled = srv
        .create_user("disabled", "disabled-pass-1", &["admin"])
        .await;
    let r = srv
        .post_json(
            "users.update",
            Some(&admin_pat),
            json!({"userId": disabled.user_id, "data": {"active": false}}),
        )
        .await;
    assert_status(&r, 200);
    let expired = srv
        .create_user("expired", "expired-pass-1", &["admin"])
        .await;
    srv.age_login_tokens(&expired, 91).await;

    let mut failures = Vec::new();
    let mut checked = 0;
    let authed = cases(&target, &victim, &victim, &customs)
        .into_iter()
        .filter(|c| c.want[0] == 401);
    for case in authed {
        for (who, s) in [
            ("revoked", &revoked),
            ("disabled", &disabled),
            ("expired", &expired),
        ] {
            let r = call(&srv, &case, Some(s)).await;
            checked += 1;
            if r.0 != 401 || r.2 != body_401() {
                failures.push(format!(
                    "{} {} as {who}: want 401, got {} {}",
                    case.method, case.path, r.0, r.2
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked > 60, "only {checked} calls checked");
    // Nothing those calls tried happened.
    let r = srv
        .get(&format!("users.info?userId={victim}"), Some(&admin_pat))
        .await;
    assert_status(&r, 200);
    assert_eq!(r.2["user"]["name"], "victim Name", "{}", r.2);
}
