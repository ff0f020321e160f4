//! Custom user statuses, as in Rocket.Chat (issue 6): `GET custom-user-status.list`
//! for every client, and `POST custom-user-status.create` / `.update` / `.delete` for
//! holders of `manage-user-status`, with Rocket.Chat's error codes.

use crate::common;

use common::*;

const LIST: &str = "custom-user-status.list";
const CREATE: &str = "custom-user-status.create";
const UPDATE: &str = "custom-user-status.update";
const DELETE: &str = "custom-user-status.delete";

/// Creates a status as `s`; must answer 200. Returns the `customUserStatus` object.
async fn create(srv: &Server, s: &Session, name: &str, status_type: &str) -> Value {
    let (status, _, body) = srv
        .post_json(
            CREATE,
            Some(s),
            json!({"name": name, "statusType": status_type}),
        )
        .await;
    assert_eq!(status, 200, "create {name}: {body}");
    let c = body["customUserStatus"].clone();
    assert_status_object(&c, name, status_type);
    assert_eq!(body, json!({"customUserStatus": c, "success": true}));
    c
}

/// `{_id, name, statusType, _updatedAt}` exactly, with these values.
#[track_caller]
fn assert_status_object(c: &Value, name: &str, status_type: &str) {
    let id = c["_id"].as_str().unwrap_or_else(|| panic!("no _id: {c}"));
    assert_eq!(
        id.chars().count(),
        17,
        "_id {id:?} is not a 17-character id"
    );
    let at = c["_updatedAt"]
        .as_str()
        .unwrap_or_else(|| panic!("no _updatedAt: {c}"));
    parse_time(at);
    assert_eq!(
        c,
        &json!({"_id": id, "name": name, "statusType": status_type, "_updatedAt": at})
    );
}

/// `GET custom-user-status.list?<query>` as `s`; must answer 200 in the list shape.
async fn list(srv: &Server, s: &Session, query: &str) -> Value {
    let path = if query.is_empty() {
        LIST.to_string()
    } else {
        format!("{LIST}?{query}")
    };
    let (status, _, body) = srv.get(&path, Some(s)).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    let n = body["statuses"]
        .as_array()
        .unwrap_or_else(|| panic!("no statuses array: {body}"))
        .len();
    assert_eq!(body["count"], n, "{body}");
    assert_eq!(body["success"], true, "{body}");
    let obj = body.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["count", "offset", "statuses", "success", "total"],
        "{body}"
    );
    body
}

fn names(body: &Value) -> Vec<String> {
    body["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn invalid_field(reason: &str, route: &str) -> Value {
    body_meteor("error-input-is-not-a-valid-field", reason, route)
}

fn name_required(route: &str) -> Value {
    body_meteor(
        "error-the-field-is-required",
        "The field Name is required",
        route,
    )
}

fn name_in_use(route: &str) -> Value {
    body_meteor(
        "Custom_User_Status_Error_Name_Already_In_Use",
        "The custom user status name is already in use",
        route,
    )
}

// -------------------------------------------------------------------- CRUD

#[tokio::test]
async fn create_list_update_and_delete() {
    let mut srv = Server::start().await;
    let admin = srv.admin().await;
    let bob = srv.create_user("bob", "bob-pass-12", &["user"]).await;

    let empty = list(&srv, &bob, "").await;
    assert_eq!(
        empty,
        json!({"statuses": [], "count": 0, "offset": 0, "total": 0, "success": true})
    );

    let meeting = create(&srv, &admin, "In a meeting", "busy").await;
    let lunch = create(&srv, &admin, "lunch", "away").await;
    let focus = create(&srv, &admin, "Focus time", "offline").await;
    let id = |c: &Value| c["_id"].as_str().unwrap().to_string();

    // Everyone sees them, sorted by name ignoring case.
    let all = list(&srv, &bob, "").await;
    assert_eq!(
        all,
        json!({"statuses": [focus, meeting, lunch], "count": 3, "offset": 0, "total": 3, "success": true})
    );
    let page = list(&srv, &bob, "offset=1&count=1").await;
    assert_eq!(
        page,
        json!({"statuses": [meeting], "count": 1, "offset": 1, "total": 3, "success": true})
    );

    // Update the name and the type.
    let (status, _, body) = srv
        .post_json(
            UPDATE,
            Some(&admin),
            json!({"_id": id(&meeting), "name": "Meeting", "statusType": "away"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let updated = body["customUserStatus"].clone();
    assert_status_object(&updated, "Meeting", "away");
    assert_eq!(updated["_id"], meeting["_id"]);
    assert!(
        parse_time(updated["_updatedAt"].as_str().unwrap())
            >= parse_time(meeting["_updatedAt"].as_str().unwrap())
    );
    assert_eq!(body, json!({"customUserStatus": updated, "success": true}));

    // Only the name: the type stays.
    let (status, _, body) = srv
        .post_json(
            UPDATE,
            Some(&admin),
            json!({"_id": id(&lunch), "name": "Lunch break"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_status_object(&body["customUserStatus"], "Lunch break", "away");
    // The same name again (its own) and a change of case are fine.
    let (status, _, body) = srv
        .post_json(
            UPDATE,
            Some(&admin),
            json!({"_id": id(&focus), "name": "focus time", "statusType": "busy"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_status_object(&body["customUserStatus"], "focus time", "busy");

    let all = list(&srv, &bob, "").await;
    assert_eq!(names(&all), ["focus time", "Lunch break", "Meeting"]);
    let types: Vec<&Value> = all["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["statusType"])
        .collect();
    assert_eq!(types, [&json!("busy"), &json!("away"), &json!("away")]);

    // Kept across a restart.
    srv.restart().await;
    assert_eq!(list(&srv, &bob, "").await, all);

    // Delete.
    let reply = srv
        .post_json(
            DELETE,
            Some(&admin),
            json!({"customUserStatusId": id(&lunch)}),
        )
        .await;
    assert_reply(&reply, 200, json!({"success": true}));
    assert_eq!(
        names(&list(&srv, &bob, "").await),
        ["focus time", "Meeting"]
    );
    // Its name is free again.
    create(&srv, &admin, "Lunch break", "online").await;
    let reply = srv
        .post_json(
            DELETE,
            Some(&admin),
            json!({"customUserStatusId": id(&meeting)}),
        )
        .await;
    assert_reply(&reply, 200, json!({"success": true}));
    srv.restart().await;
    assert_eq!(
        names(&list(&srv, &bob, "").await),
        ["focus time", "Lunch break"]
    );
}

#[tokio::test]
async fn names_are_trimmed_and_every_status_type_is_accepted() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    for t in ["online", "away", "busy", "offline"] {
        let (status, _, body) = srv
            .post_json(
                CREATE,
                Some(&admin),
                json!({"name": format!("  {t} status "), "statusType": t}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_status_object(&body["customUserStatus"], &format!("{t} status"), t);
    }
    assert_eq!(
        names(&list(&srv, &admin, "").await),
        [
            "away status",
            "busy status",
            "offline status",
            "online status"
        ]
    );
}

// ------------------------------------------------------------- permissions

#[tokio::test]
async fn managing_needs_manage_user_status_and_listing_needs_a_session() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let bob = srv.create_user("bob", "bob-pass-12", &["user"]).await;
    let existing = create(&srv, &admin, "Vacation", "away").await;
    let id = existing["_id"].as_str().unwrap();

    // A plain user: refused, whatever the body (even one that would be invalid).
    for (route, body) in [
        (CREATE, json!({"name": "Mine", "statusType": "busy"})),
        (CREATE, json!({"name": "", "statusType": "nope"})),
        (UPDATE, json!({"_id": id, "name": "Hijacked"})),
        (UPDATE, json!({"_id": "nosuchstatus12345", "name": "x"})),
        (DELETE, json!({"customUserStatusId": id})),
        (DELETE, json!({"customUserStatusId": "nosuchstatus12345"})),
    ] {
        let reply = srv.post_json(route, Some(&bob), body).await;
        assert_reply(&reply, 403, body_403());
    }
    // ... but may list.
    assert_eq!(list(&srv, &bob, "").await["statuses"], json!([existing]));

    // Without a session: 401 everywhere.
    let reply = srv.get(LIST, None).await;
    assert_reply(&reply, 401, body_401());
    for (route, body) in [
        (CREATE, json!({"name": "Anon", "statusType": "busy"})),
        (UPDATE, json!({"_id": id, "name": "Anon"})),
        (DELETE, json!({"customUserStatusId": id})),
    ] {
        let reply = srv.post_json(route, None, body).await;
        assert_reply(&reply, 401, body_401());
    }
    let bad = bob.with_token("not-a-real-token");
    let reply = srv.get(LIST, Some(&bad)).await;
    assert_reply(&reply, 401, body_401());

    // Nothing changed.
    assert_eq!(list(&srv, &admin, "").await["statuses"], json!([existing]));

    // Granting the permission to the user role lets bob manage them.
    srv.set_permission("manage-user-status", &["admin", "user"])
        .await;
    create(&srv, &bob, "Bobs own", "busy").await;
    let reply = srv
        .post_json(DELETE, Some(&bob), json!({"customUserStatusId": id}))
        .await;
    assert_reply(&reply, 200, json!({"success": true}));
    // Taking it from every role of the admin (admin, user) refuses the admin.
    srv.set_permission("manage-user-status", &["bot"]).await;
    let reply = srv
        .post_json(
            CREATE,
            Some(&admin),
            json!({"name": "Admins", "statusType": "away"}),
        )
        .await;
    assert_reply(&reply, 403, body_403());
    assert_eq!(names(&list(&srv, &admin, "").await), ["Bobs own"]);
}

// -------------------------------------------------------------- validation

/// `statusType` is optional on create, as in Rocket.Chat (issue 15 §8): a body with only
/// `name` makes an `online` custom status.
#[tokio::test]
async fn create_takes_a_body_with_only_a_name() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    for (name, body) in [
        ("Around", json!({"name": "Around"})),
        ("Nearby", json!({"name": "Nearby", "statusType": null})),
    ] {
        let r = srv.post_json(CREATE, Some(&admin), body).await;
        assert_status(&r, 200);
        assert_eq!(r.2["customUserStatus"]["name"], name, "{}", r.2);
        assert_eq!(r.2["customUserStatus"]["statusType"], "online", "{}", r.2);
    }
    let listed = list(&srv, &admin, "").await;
    let mut got = names(&listed);
    got.sort();
    assert_eq!(got, ["Around", "Nearby"]);
}

#[tokio::test]
async fn create_validation_errors_are_rocket_chats() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    create(&srv, &admin, "In a meeting", "busy").await;
    let post = |body: Value| {
        let srv = &srv;
        let admin = admin.clone();
        async move { srv.post_json(CREATE, Some(&admin), body).await }
    };

    for name in ["", "   ", "\t\n"] {
        let reply = post(json!({"name": name, "statusType": "busy"})).await;
        assert_reply(&reply, 400, name_required(CREATE));
    }
    for name in ["<b>bold</b>", "R&D", "say \"hi\"", "don't", "a > b"] {
        let reply = post(json!({"name": name, "statusType": "busy"})).await;
        assert_reply(
            &reply,
            400,
            invalid_field(&format!("{name} is not a valid name"), CREATE),
        );
    }
    for t in ["sleeping", "Busy", "ONLINE", "invisible", ""] {
        let reply = post(json!({"name": "Elsewhere", "statusType": t})).await;
        assert_reply(
            &reply,
            400,
            invalid_field(&format!("{t} is not a valid status type"), CREATE),
        );
    }
    // Names are unique ignoring case (and surrounding spaces).
    for name in ["In a meeting", "in a MEETING", "  IN A MEETING  "] {
        let reply = post(json!({"name": name, "statusType": "away"})).await;
        assert_reply(&reply, 400, name_in_use(CREATE));
    }
    // Rocket.Chat checks the name before the type: a taken name with a bad type.
    let reply = post(json!({"name": "in a meeting", "statusType": "sleeping"})).await;
    assert_reply(&reply, 400, name_in_use(CREATE));
    let reply = post(json!({"name": "", "statusType": "sleeping"})).await;
    assert_reply(&reply, 400, name_required(CREATE));

    // Wrong shapes.
    let reply = post(json!({"statusType": "busy"})).await;
    assert_reply(
        &reply,
        400,
        json!({"success": false, "error": "Match error: Missing key 'name'"}),
    );
    let reply = post(json!({"name": 5, "statusType": "busy"})).await;
    assert_reply(
        &reply,
        400,
        json!({"success": false, "error": "Match error: Expected string in field name"}),
    );
    let reply = post(json!({"name": "Elsewhere", "statusType": ["busy"]})).await;
    assert_reply(
        &reply,
        400,
        json!({"success": false, "error": "Match error: Expected string in field statusType"}),
    );
    // Nothing was created by any of these.
    assert_eq!(names(&list(&srv, &admin, "").await), ["In a meeting"]);
}

#[tokio::test]
async fn update_and_delete_validation_errors_are_rocket_chats() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let meeting = create(&srv, &admin, "In a meeting", "busy").await;
    let lunch = create(&srv, &admin, "Lunch", "away").await;
    let (mid, lid) = (
        meeting["_id"].as_str().unwrap().to_string(),
        lunch["_id"].as_str().unwrap().to_string(),
    );
    let update = |body: Value| {
        let srv = &srv;
        let admin = admin.clone();
        async move { srv.post_json(UPDATE, Some(&admin), body).await }
    };

    // Unknown id: Rocket.Chat's plain failure, before any other check.
    for body in [
        json!({"_id": "nosuchstatus12345", "name": "Anything"}),
        json!({"_id": "nosuchstatus12345", "name": "", "statusType": "sleeping"}),
        json!({"_id": "nosuchstatus12345", "name": "Lunch"}),
    ] {
        let reply = update(body).await;
        assert_reply(
            &reply,
            400,
            json!({"success": false, "error": "No custom user status found with the id of \"nosuchstatus12345\"."}),
        );
    }
    let reply = update(json!({"_id": mid, "name": "  "})).await;
    assert_reply(&reply, 400, name_required(UPDATE));
    let reply = update(json!({"_id": mid, "name": "<script>"})).await;
    assert_reply(
        &reply,
        400,
        invalid_field("<script> is not a valid name", UPDATE),
    );
    let reply = update(json!({"_id": mid, "name": "Meeting", "statusType": "sleeping"})).await;
    assert_reply(
        &reply,
        400,
        invalid_field("sleeping is not a valid status type", UPDATE),
    );
    // Another status's name, ignoring case.
    for name in ["Lunch", "LUNCH", " lunch "] {
        let reply = update(json!({"_id": mid, "name": name})).await;
        assert_reply(&reply, 400, name_in_use(UPDATE));
    }
    let reply = update(json!({"_id": mid, "name": "lunch", "statusType": "sleeping"})).await;
    assert_reply(&reply, 400, name_in_use(UPDATE));
    // Wrong shapes.
    let reply = update(json!({"name": "Meeting"})).await;
    assert_reply(
        &reply,
        400,
        json!({"success": false, "error": "Match error: Missing key '_id'"}),
    );
    let reply = update(json!({"_id": mid})).await;
    assert_reply(
        &reply,
        400,
        json!({"success": false, "error": "Match error: Missing key 'name'"}),
    );
    let reply = update(json!({"_id": mid, "name": "Meeting", "statusType": 3})).await;
    assert_reply(
        &reply,
        400,
        json!({"success": false, "error": "Match error: Expected string in field statusType"}),
    );

    // Delete: unknown id, missing id.
    let reply = srv
        .post_json(
            DELETE,
            Some(&admin),
            json!({"customUserStatusId": "nosuchstatus12345"}),
        )
        .await;
    assert_reply(
        &reply,
        400,
        body_meteor(
            "Custom_User_Status_Error_Invalid_User_Status",
            "Invalid user status",
            DELETE,
        ),
    );
    for body in [
        json!({}),
        json!({"customUserStatusId": ""}),
        json!({"customUserStatusId": null}),
        json!({"_id": lid}),
    ] {
        let reply = srv.post_json(DELETE, Some(&admin), body).await;
        assert_reply(
            &reply,
            400,
            json!({"success": false, "error": "The \"customUserStatusId\" params is required!"}),
        );
    }
    // Deleting twice: the second time it is unknown.
    let reply = srv
        .post_json(DELETE, Some(&admin), json!({"customUserStatusId": lid}))
        .await;
    assert_reply(&reply, 200, json!({"success": true}));
    let reply = srv
        .post_json(DELETE, Some(&admin), json!({"customUserStatusId": lid}))
        .await;
    assert_reply(
        &reply,
        400,
        body_meteor(
            "Custom_User_Status_Error_Invalid_User_Status",
            "Invalid user status",
            DELETE,
        ),
    );
    // ... and updating it too.
    let reply = update(json!({"_id": lid, "name": "Lunch"})).await;
    assert_reply(
        &reply,
        400,
        json!({"success": false, "error": format!("No custom user status found with the id of \"{lid}\".")}),
    );
    // Nothing changed by the failures.
    assert_eq!(list(&srv, &admin, "").await["statuses"], json!([meeting]));
}
