//! The notices clients subscribe to besides the status streams (issue 16): the user's
//! own `stream-notify-user` `<uid>/userData`, `stream-notify-logged` (custom statuses,
//! permissions, roles, renames, deletions, private settings), `stream-notify-all`
//! `public-settings-changed`, `stream-roles` and `stream-room-messages`
//! `__my_messages__`. Every expected frame is written out literally, byte for byte as
//! Rocket.Chat sends it; the comment above each names the upstream file its shape
//! comes from (docs/decisions.md lists them all).

use crate::common;

use std::time::Duration;

use common::ddp::*;
use common::*;

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(400);

/// Subscribes to `name` / `key` with the trailing `false` most clients send; asserts `ready`.
async fn sub_ready(c: &mut Ddp, id: &str, name: &str, key: &str) {
    let v = c.sub(id, name, json!([key, false])).await;
    assert_eq!(v, json!({"msg": "ready", "subs": [id]}), "{name} {key}");
}

/// Rocket.Chat's refusal of a stream read (`new MeteorError('not-allowed')`, streamer.module.ts).
fn not_allowed(id: &str) -> Value {
    json!({"msg": "nosub", "id": id, "error": {
        "isClientSafe": true, "error": "not-allowed", "message": "[not-allowed]",
        "errorType": "Meteor.Error"}})
}

/// The one `changed` frame on `stream` with `eventName` `event` within `WAIT`, raw.
async fn changed_on(c: &mut Ddp, stream: &str, event: &str) -> String {
    c.changed_matching(WAIT, |v| {
        v["collection"] == stream && v["fields"]["eventName"] == event
    })
    .await
    .unwrap_or_else(|| panic!("no {stream} {event} frame; others: {:?}", c.others))
}

fn ok(r: &Reply) {
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
}

#[tokio::test]
async fn own_user_data_carries_status_and_account_changes_and_only_to_the_user() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let a = &alice.user_id;

    let mut ca = Ddp::connect_resume(&srv, &alice.token).await;
    sub_ready(
        &mut ca,
        "ud",
        "stream-notify-user",
        &format!("{a}/userData"),
    )
    .await;
    // Another user's keys are refused as Rocket.Chat refuses them
    // (notifications.module.ts: streamUser.allowRead, own uid only).
    let mut cb = Ddp::connect_resume(&srv, &bob.token).await;
    assert_eq!(
        cb.sub(
            "x",
            "stream-notify-user",
            json!([format!("{a}/userData"), false])
        )
        .await,
        not_allowed("x")
    );
    sub_ready(
        &mut cb,
        "own",
        "stream-notify-user",
        &format!("{}/userData", bob.user_id),
    )
    .await;

    // A status change: listeners.module.ts, the `presence.status` listener.
    ok(&srv
        .set_status(&alice, json!({"status": "busy", "message": "in a call"}))
        .await);
    assert_eq!(
        ca.expect_changed(WAIT).await,
        format!(
            r#"{{"msg":"changed","collection":"stream-notify-user","id":"id","fields":{{"eventName":"{a}/userData","args":[{{"type":"updated","id":"{a}","diff":{{"status":"busy","statusText":"in a call"}},"unset":{{}}}}]}}}}"#
        )
    );
    ok(&srv
        .set_status(&alice, json!({"status": "away", "message": ""}))
        .await);
    assert_eq!(
        ca.expect_changed(WAIT).await,
        format!(
            r#"{{"msg":"changed","collection":"stream-notify-user","id":"id","fields":{{"eventName":"{a}/userData","args":[{{"type":"updated","id":"{a}","diff":{{"status":"away"}},"unset":{{"statusText":1}}}}]}}}}"#
        )
    );

    // Name, username and roles changed by an admin: listeners.module.ts, `watch.users`
    // (the diff of the user's own record; no `unset` when nothing was unset).
    ok(&srv
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": a, "data": {"name": "Alice A", "username": "alice2", "roles": ["user", "bot"]}}),
        )
        .await);
    assert_eq!(
        changed_on(&mut ca, "stream-notify-user", &format!("{a}/userData")).await,
        format!(
            r#"{{"msg":"changed","collection":"stream-notify-user","id":"id","fields":{{"eventName":"{a}/userData","args":[{{"id":"{a}","diff":{{"username":"alice2","name":"Alice A","roles":["user","bot"]}},"type":"updated"}}]}}}}"#
        )
    );
    ca.expect_no_changed(QUIET).await;

    // Preferences: saveUserPreferences.ts, `settings.preferences.<key>` in the diff.
    ok(&srv
        .post_json(
            "users.setPreferences",
            Some(&alice),
            json!({"data": {"enableAutoAway": false, "idleTimeLimit": 120}}),
        )
        .await);
    assert_eq!(
        ca.expect_changed(WAIT).await,
        format!(
            r#"{{"msg":"changed","collection":"stream-notify-user","id":"id","fields":{{"eventName":"{a}/userData","args":[{{"id":"{a}","diff":{{"settings.preferences.enableAutoAway":false,"settings.preferences.idleTimeLimit":120}},"type":"updated"}}]}}}}"#
        )
    );
    ca.expect_no_changed(QUIET).await;
    // Bob heard nothing of Alice's.
    cb.expect_no_changed(QUIET).await;
}

#[tokio::test]
async fn custom_status_changes_reach_every_logged_in_subscriber() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let mut c = Ddp::connect_resume(&srv, &bob.token).await;
    sub_ready(
        &mut c,
        "u",
        "stream-notify-logged",
        "updateCustomUserStatus",
    )
    .await;
    sub_ready(
        &mut c,
        "d",
        "stream-notify-logged",
        "deleteCustomUserStatus",
    )
    .await;

    let r = srv
        .post_json(
            "custom-user-status.create",
            Some(&admin),
            json!({"name": "Lunch", "statusType": "away"}),
        )
        .await;
    ok(&r);
    let id = r.2["customUserStatus"]["_id"].as_str().unwrap().to_string();
    // apps/meteor/server/lib/insertOrUpdateUserStatus.ts: a new one is
    // `{...{name, statusType}, _id}`, sent by listeners.module.ts as `{userStatusData}`.
    assert_eq!(
        c.expect_changed(WAIT).await,
        format!(
            r#"{{"msg":"changed","collection":"stream-notify-logged","id":"id","fields":{{"eventName":"updateCustomUserStatus","args":[{{"userStatusData":{{"name":"Lunch","statusType":"away","_id":"{id}"}}}}]}}}}"#
        )
    );

    ok(&srv
        .post_json(
            "custom-user-status.update",
            Some(&admin),
            json!({"_id": id, "name": "Long lunch", "statusType": "busy"}),
        )
        .await);
    // custom-user-status.ts (REST update) passes {_id, name, statusType, previousName,
    // previousStatusType} to insertOrUpdateUserStatus, which broadcasts it as is.
    assert_eq!(
        c.expect_changed(WAIT).await,
        format!(
            r#"{{"msg":"changed","collection":"stream-notify-logged","id":"id","fields":{{"eventName":"updateCustomUserStatus","args":[{{"userStatusData":{{"_id":"{id}","name":"Long lunch","statusType":"busy","previousName":"Lunch","previousStatusType":"away"}}}}]}}}}"#
        )
    );

    let listed = srv.get("custom-user-status.list", Some(&bob)).await;
    let at = listed.2["statuses"][0]["_updatedAt"]
        .as_str()
        .unwrap()
        .to_string();
    let ms = chrono::DateTime::parse_from_rfc3339(&at)
        .unwrap()
        .timestamp_millis();
    ok(&srv
        .post_json(
            "custom-user-status.delete",
            Some(&admin),
            json!({"customUserStatusId": id}),
        )
        .await);
    // deleteCustomUserStatus.ts broadcasts the deleted record; EJSON dates over DDP.
    assert_eq!(
        c.expect_changed(WAIT).await,
        format!(
            r#"{{"msg":"changed","collection":"stream-notify-logged","id":"id","fields":{{"eventName":"deleteCustomUserStatus","args":[{{"userStatusData":{{"_id":"{id}","name":"Long lunch","statusType":"busy","_updatedAt":{{"$date":{ms}}}}}}}]}}}}"#
        )
    );
}

#[tokio::test]
async fn renames_roles_and_deletions_are_announced_to_the_logged_in() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let carol = srv
        .create_user_only("carol", "carol-pass-1", &["user"])
        .await;
    let mut c = Ddp::connect_resume(&srv, &bob.token).await;
    for (id, key) in [
        ("n", "Users:NameChanged"),
        ("r", "roles-change"),
        ("d", "Users:Deleted"),
    ] {
        sub_ready(&mut c, id, "stream-notify-logged", key).await;
    }

    ok(&srv
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": carol, "data": {"username": "carol2"}}),
        )
        .await);
    // setUsername.ts: `user.nameChanged` {_id, name, username}.
    assert_eq!(
        c.expect_changed(WAIT).await,
        format!(
            r#"{{"msg":"changed","collection":"stream-notify-logged","id":"id","fields":{{"eventName":"Users:NameChanged","args":[{{"_id":"{carol}","name":"carol Name","username":"carol2"}}]}}}}"#
        )
    );
    // A display-name change alone is announced only with UI_Use_Real_Name (setRealName.ts).
    ok(&srv
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": carol, "data": {"name": "Carol C"}}),
        )
        .await);
    c.expect_no_changed(QUIET).await;

    ok(&srv
        .post_json(
            "roles.addUserToRole",
            Some(&admin),
            json!({"roleName": "bot", "username": "carol2"}),
        )
        .await);
    // addUserToRole.ts / syncUserRoles.ts: `user.roleUpdate` {type, _id, u: {_id, username}}.
    assert_eq!(
        c.expect_changed(WAIT).await,
        format!(
            r#"{{"msg":"changed","collection":"stream-notify-logged","id":"id","fields":{{"eventName":"roles-change","args":[{{"type":"added","_id":"bot","u":{{"_id":"{carol}","username":"carol2"}}}}]}}}}"#
        )
    );
    ok(&srv
        .post_json(
            "roles.removeUserFromRole",
            Some(&admin),
            json!({"roleName": "bot", "username": "carol2"}),
        )
        .await);
    assert_eq!(
        c.expect_changed(WAIT).await,
        format!(
            r#"{{"msg":"changed","collection":"stream-notify-logged","id":"id","fields":{{"eventName":"roles-change","args":[{{"type":"removed","_id":"bot","u":{{"_id":"{carol}","username":"carol2"}}}}]}}}}"#
        )
    );

    ok(&srv
        .post_json("users.delete", Some(&admin), json!({"userId": carol}))
        .await);
    // deleteUser.ts broadcasts `user.deleted` with {messageErasureType} (default `Delete`);
    // listeners.module.ts sends {userId, ...data}.
    assert_eq!(
        c.expect_changed(WAIT).await,
        format!(
            r#"{{"msg":"changed","collection":"stream-notify-logged","id":"id","fields":{{"eventName":"Users:Deleted","args":[{{"userId":"{carol}","messageErasureType":"Delete"}}]}}}}"#
        )
    );
}

#[tokio::test]
async fn permission_changes_carry_the_permission_record() {
    let srv = Server::start().await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let mut c = Ddp::connect_resume(&srv, &bob.token).await;
    sub_ready(&mut c, "p", "stream-notify-logged", "permissions-changed").await;
    srv.set_permission("manage-user-status", &["admin", "user"])
        .await;
    let frame = c.expect_changed(WAIT).await;
    let v: Value = serde_json::from_str(&frame).unwrap();
    let ms = v["fields"]["args"][1]["_updatedAt"]["$date"]
        .as_i64()
        .expect("an EJSON date");
    // lib/notifyListener.ts: `permission.changed` {clientAction, data: <the record>};
    // listeners.module.ts sends [clientAction, data].
    assert_eq!(
        frame,
        format!(
            r#"{{"msg":"changed","collection":"stream-notify-logged","id":"id","fields":{{"eventName":"permissions-changed","args":["updated",{{"_id":"manage-user-status","roles":["admin","user"],"_updatedAt":{{"$date":{ms}}}}}]}}}}"#
        )
    );
    assert!((chrono::Utc::now().timestamp_millis() - ms).abs() < 60_000);
    // The same roles again: nothing changed, nothing announced.
    srv.set_permission("manage-user-status", &["admin", "user"])
        .await;
    c.expect_no_changed(QUIET).await;
}

#[tokio::test]
async fn settings_changes_public_to_all_private_only_to_those_allowed() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let mut ca = Ddp::connect_resume(&srv, &admin.token).await;
    sub_ready(
        &mut ca,
        "priv",
        "stream-notify-logged",
        "private-settings-changed",
    )
    .await;
    let mut cb = Ddp::connect_resume(&srv, &bob.token).await;
    // notifications.module.ts: private-settings-changed needs view-privileged-setting,
    // edit-privileged-setting or manage-selected-settings.
    assert_eq!(
        cb.sub(
            "priv",
            "stream-notify-logged",
            json!(["private-settings-changed", false])
        )
        .await,
        not_allowed("priv")
    );
    sub_ready(
        &mut cb,
        "pub",
        "stream-notify-all",
        "public-settings-changed",
    )
    .await;

    // listeners.module.ts, `watch.settings`: [clientAction, {_id, value}] (the other
    // fields are undefined for statusd's settings and so absent).
    srv.set_setting("API_Default_Count", json!(60)).await;
    assert_eq!(
        ca.expect_changed(WAIT).await,
        r#"{"msg":"changed","collection":"stream-notify-logged","id":"id","fields":{"eventName":"private-settings-changed","args":["updated",{"_id":"API_Default_Count","value":60}]}}"#
    );
    cb.expect_no_changed(QUIET).await;

    srv.set_setting("Site_Name", json!("Status HQ")).await;
    assert_eq!(
        cb.expect_changed(WAIT).await,
        r#"{"msg":"changed","collection":"stream-notify-all","id":"id","fields":{"eventName":"public-settings-changed","args":["updated",{"_id":"Site_Name","value":"Status HQ"}]}}"#
    );
    // A public setting is also a setting: private-settings-changed carries it too.
    assert_eq!(
        ca.expect_changed(WAIT).await,
        r#"{"msg":"changed","collection":"stream-notify-logged","id":"id","fields":{"eventName":"private-settings-changed","args":["updated",{"_id":"Site_Name","value":"Status HQ"}]}}"#
    );
}

#[tokio::test]
async fn roles_and_my_messages_are_ready_and_silent_rooms_are_not_allowed() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let mut c = Ddp::connect_resume(&srv, &bob.token).await;
    sub_ready(&mut c, "roles", "stream-roles", "roles").await;
    // The SDK's form: {"useCollection": false, "args": []}.
    assert_eq!(
        c.sub(
            "mine",
            "stream-room-messages",
            json!(["__my_messages__", {"useCollection": false, "args": []}])
        )
        .await,
        json!({"msg": "ready", "subs": ["mine"]})
    );
    // No rooms here: a room's stream is refused as for a room one cannot access.
    assert_eq!(
        c.sub("room", "stream-room-messages", json!(["GENERAL", false]))
            .await,
        not_allowed("room")
    );
    // Role changes of users are not `roles` records (those never change here), and
    // nothing ever arrives on `__my_messages__`.
    ok(&srv
        .post_json(
            "roles.addUserToRole",
            Some(&admin),
            json!({"roleName": "bot", "username": "bob"}),
        )
        .await);
    ok(&srv.set_status(&admin, json!({"status": "busy"})).await);
    c.expect_no_changed(QUIET).await;
}

/// Every `stream-notify-*` key (and the other streams) the clients subscribe to at
/// login, from their source: the Rocket.Chat mobile app (app/lib/methods/*.ts,
/// app/sagas/login.js) and the `@rocket.chat/sdk` driver it uses
/// (lib/drivers/ddp.ts, `mobile` branch: subscribeNotifyAll, subscribeLoggedNotify,
/// subscribeNotifyUser), Ruqola (src/core/rocketchatbackend.cpp, slotUserIDChanged),
/// the SDK's Bot client (`__my_messages__`). The two Rocket.Chat refuses are refused
/// here too (the end of the test).
#[tokio::test]
async fn every_key_the_clients_subscribe_to_is_ready() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let uid = admin.user_id.clone();
    let mut keys: Vec<(&str, String)> = Vec::new();
    for k in [
        "message",
        "otr",
        "webrtc",
        "notification",
        "rooms-changed",
        "subscriptions-changed",
        "uiInteraction",
        "e2ekeyRequest",
        "userData",
        "video-conference",
        "force_logout",
        "calendar",
        // The mobile app's VoIP listens for it (app/lib/services/voip/MediaSessionInstance.ts).
        "media-signal",
    ] {
        keys.push(("stream-notify-user", format!("{uid}/{k}")));
    }
    for k in [
        "roles-change",
        "updateEmojiCustom",
        "deleteEmojiCustom",
        "updateAvatar",
        "public-settings-changed",
        "permissions-changed",
        "deleteCustomSound",
        "updateCustomSound",
    ] {
        keys.push(("stream-notify-all", k.to_string()));
    }
    for k in [
        "Users:NameChanged",
        "Users:Deleted",
        "updateAvatar",
        "updateEmojiCustom",
        "deleteEmojiCustom",
        "roles-change",
        "deleteCustomUserStatus",
        "updateCustomUserStatus",
        "user-status",
        "permissions-changed",
        // Ruqola asks for it whoever logs in; an admin may read it.
        "private-settings-changed",
    ] {
        keys.push(("stream-notify-logged", k.to_string()));
    }
    keys.push(("stream-roles", "roles".into()));
    keys.push(("stream-room-messages", "__my_messages__".into()));

    let mut c = Ddp::connect_resume(&srv, &admin.token).await;
    for (i, (stream, key)) in keys.iter().enumerate() {
        // Ruqola sends the key alone, the SDKs `[key, false]` or the object form.
        let params = match i % 3 {
            0 => json!([key]),
            1 => json!([key, false]),
            _ => json!([key, {"useCollection": false, "args": []}]),
        };
        let id = format!("s{i}");
        assert_eq!(
            c.sub(&id, stream, params).await,
            json!({"msg": "ready", "subs": [id]}),
            "{stream} {key}"
        );
    }
    // Silent while there is nothing to send.
    c.expect_no_changed(QUIET).await;

    // Two of Ruqola's subscriptions Rocket.Chat itself refuses, and so does statusd
    // (notifications.module.ts): `private-settings-changed` for a user without the
    // settings permissions, and `stream-notify-room-users` (`allowRead('none')`).
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let mut c = Ddp::connect_resume(&srv, &bob.token).await;
    assert_eq!(
        c.sub(
            "p",
            "stream-notify-logged",
            json!(["private-settings-changed"])
        )
        .await,
        not_allowed("p")
    );
    assert_eq!(
        c.sub(
            "w",
            "stream-notify-room-users",
            json!([format!("{}/webrtc", bob.user_id)])
        )
        .await,
        not_allowed("w")
    );
}

#[tokio::test]
async fn notices_count_against_the_subscription_limit() {
    let srv = Server::start_with(&[("WS_MAX_SUBSCRIPTIONS", "2")]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let mut c = Ddp::connect_resume(&srv, &bob.token).await;
    sub_ready(&mut c, "a", "stream-roles", "roles").await;
    sub_ready(
        &mut c,
        "b",
        "stream-notify-user",
        &format!("{}/userData", bob.user_id),
    )
    .await;
    assert_eq!(
        c.sub(
            "c",
            "stream-notify-all",
            json!(["public-settings-changed", false])
        )
        .await,
        json!({"msg": "nosub", "id": "c", "error": meteor_error(
            json!("error-too-many-subscriptions"), "Too many subscriptions on this connection")})
    );
    c.unsub("a").await;
    sub_ready(&mut c, "c", "stream-notify-all", "public-settings-changed").await;
}

/// What the admin CLI commits reaches subscribers too (`external.rs` finds it, the
/// writer derives the same notices).
#[tokio::test]
async fn a_change_committed_by_another_process_is_announced() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let r = srv
        .post_json(
            "custom-user-status.create",
            Some(&admin),
            json!({"name": "Focus", "statusType": "busy"}),
        )
        .await;
    ok(&r);
    let id = r.2["customUserStatus"]["_id"].as_str().unwrap().to_string();
    let mut c = Ddp::connect_resume(&srv, &bob.token).await;
    sub_ready(
        &mut c,
        "u",
        "stream-notify-logged",
        "updateCustomUserStatus",
    )
    .await;
    srv.edit_store(&format!(
        "UPDATE custom_statuses SET name = 'Deep focus' WHERE id = '{id}'"
    ));
    assert_eq!(
        c.expect_changed(WAIT).await,
        format!(
            r#"{{"msg":"changed","collection":"stream-notify-logged","id":"id","fields":{{"eventName":"updateCustomUserStatus","args":[{{"userStatusData":{{"_id":"{id}","name":"Deep focus","statusType":"busy","previousName":"Focus","previousStatusType":"busy"}}}}]}}}}"#
        )
    );
}

/// Deactivated, then deleted: the user's own connection hears both before it is closed
/// (listeners.module.ts, `watch.users`: `updated` with `{active}` from
/// setUserActiveStatus.ts, then `removed`).
#[tokio::test]
async fn deactivation_and_deletion_reach_the_user_themself() {
    // Pinged every second: an idle connection of a disabled user closes within one.
    let srv = Server::start_with(&[("DDP_PING_SECS", "1")]).await;
    let admin = srv.admin().await;
    let dan = srv.create_user("dan", "dan-pass-1", &["user"]).await;
    let d = &dan.user_id;
    let mut c = Ddp::connect_resume(&srv, &dan.token).await;
    sub_ready(&mut c, "ud", "stream-notify-user", &format!("{d}/userData")).await;
    ok(&srv
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": d, "data": {"active": false}}),
        )
        .await);
    assert_eq!(
        changed_on(&mut c, "stream-notify-user", &format!("{d}/userData")).await,
        format!(
            r#"{{"msg":"changed","collection":"stream-notify-user","id":"id","fields":{{"eventName":"{d}/userData","args":[{{"id":"{d}","diff":{{"active":false}},"type":"updated"}}]}}}}"#
        )
    );
    // Logged out with its tokens: the connection is closed (1008).
    assert!(
        c.wait_closed(WAIT).await,
        "a deactivated user's connection stays open"
    );

    // A deleted user's own connection (another user, still logged in) hears `removed`.
    let eve = srv.create_user("eve", "eve-pass-1", &["user"]).await;
    let e = &eve.user_id;
    let mut c = Ddp::connect_resume(&srv, &eve.token).await;
    sub_ready(&mut c, "ud", "stream-notify-user", &format!("{e}/userData")).await;
    ok(&srv
        .post_json("users.delete", Some(&admin), json!({"userId": e}))
        .await);
    // (Going offline with it comes first, as a status change.)
    let removed = c
        .changed_matching(WAIT, |v| v["fields"]["args"][0]["type"] == "removed")
        .await
        .expect("the removed userData");
    assert_eq!(
        removed,
        format!(
            r#"{{"msg":"changed","collection":"stream-notify-user","id":"id","fields":{{"eventName":"{e}/userData","args":[{{"id":"{e}","type":"removed"}}]}}}}"#
        )
    );
}

/// `Presence_broadcast_disabled` silences presence only (Presence.ts `broadcastEnabled`):
/// the setting's own change and the other notices still go out, and the mobile app,
/// which follows that setting through `public-settings-changed`, hears it.
#[tokio::test]
async fn a_disabled_presence_broadcast_silences_status_only() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let mut c = Ddp::connect_resume(&srv, &bob.token).await;
    sub_ready(
        &mut c,
        "pub",
        "stream-notify-all",
        "public-settings-changed",
    )
    .await;
    sub_ready(
        &mut c,
        "cs",
        "stream-notify-logged",
        "updateCustomUserStatus",
    )
    .await;
    sub_ready(
        &mut c,
        "ud",
        "stream-notify-user",
        &format!("{}/userData", bob.user_id),
    )
    .await;

    srv.set_setting("Presence_broadcast_disabled", json!(true))
        .await;
    assert_eq!(
        c.expect_changed(WAIT).await,
        r#"{"msg":"changed","collection":"stream-notify-all","id":"id","fields":{"eventName":"public-settings-changed","args":["updated",{"_id":"Presence_broadcast_disabled","value":true}]}}"#
    );
    ok(&srv.set_status(&bob, json!({"status": "busy"})).await);
    c.expect_no_changed(QUIET).await;
    ok(&srv
        .post_json(
            "custom-user-status.create",
            Some(&admin),
            json!({"name": "Quiet", "statusType": "busy"}),
        )
        .await);
    let v: Value = serde_json::from_str(&c.expect_changed(WAIT).await).unwrap();
    assert_eq!(v["fields"]["eventName"], "updateCustomUserStatus", "{v}");
}
