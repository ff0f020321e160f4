//! Users: create, change, (de)activate, give and take roles, delete. Each operation is
//! a function over the writer's `Tx`; the rules they share are defined here once:
//! the workspace keeps an active admin (`leaves_no_admin`), and a user who is not
//! active is logged out everywhere (`save`).

use chrono::{DateTime, Utc};

use super::identity::{self, Purpose};
use super::{tokens, METHOD};
use crate::auth::defaults::{self, ADMIN};
use crate::auth::secrets;
use crate::change;
use crate::error::{Error, Result};
use crate::model::{Email, Source, Status, User, UserKind};
use crate::settings;
use crate::state::Tx;

/// The id (and username) of the bot every workspace has, as in Rocket.Chat.
pub const ROCKET_CAT: &str = "rocket.cat";

/// A user as every account starts: a person with the `user` role, offline, online by
/// choice, no email, no password.
pub fn new_user(username: &str, name: &str, now: DateTime<Utc>) -> User {
    User {
        id: secrets::new_id(),
        username: username.to_string(),
        name: name.to_string(),
        bio: String::new(),
        nickname: String::new(),
        preferences: Default::default(),
        emails: Vec::new(),
        password_hash: None,
        roles: vec![defaults::USER.into()],
        active: true,
        kind: UserKind::User,
        status: Status::Offline,
        status_default: Status::Online,
        status_connection: Status::Offline,
        status_text: String::new(),
        status_source: None,
        status_expires_at: None,
        status_id: None,
        dnd: None,
        previous_state: None,
        utc_offset: 0.0,
        created_at: now,
        updated_at: now,
        last_login: None,
        last_seen: None,
    }
}

/// Who makes an account change, with the permissions that decide what they may do
/// (resolved before the job, from the caller's roles).
#[derive(Clone, Debug, Default)]
pub struct Editor {
    pub id: String,
    /// The hash of the token the change is made with: the session a password change
    /// keeps.
    pub token: Option<String>,
    pub edit_other_info: bool,
    pub edit_other_password: bool,
    pub assign_roles: bool,
    pub assign_admin: bool,
}

#[cfg(test)]
impl Editor {
    /// Someone who may do anything.
    pub fn operator() -> Editor {
        Editor {
            id: String::new(),
            token: None,
            edit_other_info: true,
            edit_other_password: true,
            assign_roles: true,
            assign_admin: true,
        }
    }
}

fn not_allowed(reason: &str) -> Error {
    Error::refused("error-action-not-allowed", reason).by(METHOD)
}

/// The rule: only holders of `assign-admin-role` make someone an admin (Rocket.Chat's
/// validateUserData), whether by users.create, users.update or roles.addUserToRole.
pub fn check_admin_assignment(roles: &[String], may_assign_admin: bool) -> Result<()> {
    if roles.iter().any(|r| r == ADMIN) && !may_assign_admin {
        return Err(not_allowed("Assigning admin is not allowed"));
    }
    Ok(())
}

/// Every role must be one statusd knows.
pub fn check_roles(roles: &[String]) -> Result<()> {
    match roles.iter().find(|r| !defaults::role_exists(r)) {
        Some(r) => {
            Err(Error::refused("error-invalid-role", &format!("Invalid role {r}")).by(METHOD))
        }
        None => Ok(()),
    }
}

/// The rule: the workspace keeps an active admin. Does changing `before` into `after`
/// (`None`: deleting the user) take the last one away?
pub fn leaves_no_admin(tx: &Tx, before: &User, after: Option<&User>) -> bool {
    let active_admin = |u: &User| u.active && u.has_role(ADMIN);
    active_admin(before) && !after.is_some_and(active_admin) && tx.admins_except(&before.id) == 0
}

/// The refusal of a change that would leave no active admin (users.update,
/// users.delete, `statusd user disable`).
fn last_admin() -> Error {
    Error::refused(
        "error-action-not-allowed",
        "Leaving the app without admins is not allowed",
    )
}

/// The refusal of taking the admin role from the last admin (roles.removeUserFromRole,
/// `statusd user role --remove admin`): the same rule in the role routes' words.
fn last_admin_role() -> Error {
    Error::refused(
        "error-remove-last-admin",
        "This is the last admin, the role cannot be removed",
    )
}

/// The rule: a user who is not active is logged out everywhere, every token of theirs
/// revoked. Returns how many were.
pub fn log_out_if_inactive(tx: &mut Tx, user: &User) -> usize {
    if user.active {
        0
    } else {
        tokens::revoke_all(tx, &user.id)
    }
}

/// Writes a changed user, logging them out everywhere if they are not active.
/// Returns how many tokens were revoked.
pub fn save(tx: &mut Tx, user: User) -> usize {
    let revoked = log_out_if_inactive(tx, &user);
    tx.put_user(user);
    revoked
}

/// A new account, as users.create, users.register and `statusd user add` make it.
pub struct NewAccount {
    pub username: String,
    pub name: String,
    pub email: Option<String>,
    /// From `password::hash`, made before the job; None for a bot without a password.
    pub password_hash: Option<String>,
    pub roles: Vec<String>,
    pub active: bool,
    pub kind: UserKind,
    /// Kept as given once checked (`identity::bio`, `identity::nickname`); empty: none.
    pub bio: String,
    pub nickname: String,
    /// Whether the email is already verified (users.create `verified`).
    pub verified: bool,
    /// Already normalised (`status::rules::normalize_text`).
    pub status_text: String,
}

impl NewAccount {
    /// A person with the `user` role and nothing else set.
    pub fn person(username: &str, name: &str, email: Option<String>) -> NewAccount {
        NewAccount {
            username: username.to_string(),
            name: name.to_string(),
            email,
            password_hash: None,
            roles: vec![defaults::USER.into()],
            active: true,
            kind: UserKind::User,
            bio: String::new(),
            nickname: String::new(),
            verified: false,
            status_text: String::new(),
        }
    }
}

/// Creates a user, refusing in the words of `purpose`'s route. The roles can be
/// checked before hashing the password (`check_roles`); they are checked here again so
/// this is complete by itself.
pub fn create(tx: &mut Tx, acct: NewAccount, purpose: Purpose) -> Result<User> {
    check_roles(&acct.roles)?;
    let name = identity::name(&acct.name)?;
    identity::check(
        tx,
        purpose,
        Some(&acct.username),
        acct.email.as_deref(),
        None,
    )?;
    let mut user = new_user(&acct.username, &name, tx.now);
    user.emails = acct
        .email
        .into_iter()
        .map(|address| Email {
            address,
            verified: acct.verified,
        })
        .collect();
    user.password_hash = acct.password_hash;
    user.roles = acct.roles;
    user.active = acct.active;
    user.kind = acct.kind;
    user.bio = identity::bio(&acct.bio)?;
    user.nickname = identity::nickname(&acct.nickname)?;
    user.status_text = acct.status_text;
    save(tx, user.clone());
    Ok(user)
}

/// Changes to a user (users.update's `data`); `None` leaves a field as it is.
#[derive(Default)]
pub struct Changes {
    pub username: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    /// From `password::hash`, made before the job.
    pub password_hash: Option<String>,
    pub active: Option<bool>,
    pub roles: Option<Vec<String>>,
    /// Already normalised (`status::rules::normalize_text`).
    pub status_text: Option<String>,
    pub bio: Option<String>,
    pub nickname: Option<String>,
    /// Sets whether the (first) email is verified.
    pub verified: Option<bool>,
}

impl Changes {
    /// Does this change the status text of `current`?
    pub fn changes_text(&self, current: &User) -> bool {
        self.status_text
            .as_ref()
            .is_some_and(|t| *t != current.status_text)
    }
}

/// Rocket.Chat's validateUserData and validateUserEditing: may `editor` make `changes`
/// to `current`? Pure. `editor.edit_other_info` exempts from the workspace's
/// `Accounts_Allow*Change` settings only for other users, never for oneself.
pub fn check_editing(tx: &Tx, editor: &Editor, current: &User, changes: &Changes) -> Result<()> {
    let myself = editor.id == current.id;
    if changes.verified == Some(true) && myself {
        return Err(not_allowed("Editing email verification is not allowed"));
    }
    if !myself && !editor.edit_other_info {
        return Err(not_allowed("Editing user is not allowed"));
    }
    if let Some(roles) = &changes.roles {
        check_roles(roles)?;
        check_admin_assignment(roles, editor.assign_admin)?;
        let differ = roles.iter().any(|r| !current.has_role(r))
            || current.roles.iter().any(|r| !roles.contains(r));
        if differ && !editor.assign_roles {
            return Err(not_allowed("Assign roles is not allowed"));
        }
    }
    let exempt = editor.edit_other_info && !myself;
    if !tx.value(&settings::ALLOW_USER_PROFILE_CHANGE)
        && !editor.edit_other_info
        && !editor.edit_other_password
    {
        return Err(not_allowed("Edit user profile is not allowed"));
    }
    let edits = |new: &Option<String>, old: &str| new.as_deref().is_some_and(|n| n != old);
    let rules = [
        (
            edits(&changes.username, &current.username),
            &settings::ALLOW_USERNAME_CHANGE,
            "Edit username is not allowed",
        ),
        (
            changes.changes_text(current),
            &settings::ALLOW_STATUS_MESSAGE_CHANGE,
            "Edit user status is not allowed",
        ),
        (
            edits(&changes.name, &current.name),
            &settings::ALLOW_REAL_NAME_CHANGE,
            "Edit user real name is not allowed",
        ),
        (
            current
                .first_email()
                .is_some_and(|old| edits(&changes.email, old)),
            &settings::ALLOW_EMAIL_CHANGE,
            "Edit user email is not allowed",
        ),
    ];
    for (editing, allowed, refusal) in rules {
        if editing && !exempt && !tx.value(allowed) {
            return Err(not_allowed(refusal));
        }
    }
    if changes.password_hash.is_some() {
        if !myself && !editor.edit_other_password {
            return Err(not_allowed("Edit user password is not allowed"));
        }
        let exempt = editor.edit_other_password && !myself;
        if !exempt && !tx.value(&settings::ALLOW_PASSWORD_CHANGE) {
            return Err(not_allowed("Edit user password is not allowed"));
        }
    }
    Ok(())
}

/// Changes the user `user_id` as `editor` may (`check_editing`). A new status text
/// goes through the status path (history, watchers); a new password ends every other
/// session of the user. Returns the user as it is now.
pub fn update(tx: &mut Tx, user_id: &str, changes: Changes, editor: &Editor) -> Result<User> {
    let current = tx.user(user_id).ok_or_else(Error::invalid_user)?;
    check_editing(tx, editor, &current, &changes)?;
    identity::check(
        tx,
        Purpose::Change,
        changes.username.as_deref(),
        changes.email.as_deref(),
        Some(&current),
    )?;
    let mut u = (*current).clone();
    if let Some(n) = changes.username {
        u.username = n;
    }
    if let Some(n) = &changes.name {
        u.name = identity::name(n)?;
    }
    if let Some(b) = &changes.bio {
        u.bio = identity::bio(b)?;
    }
    if let Some(n) = &changes.nickname {
        u.nickname = identity::nickname(n)?;
    }
    if let Some(e) = changes.email {
        if u.first_email() != Some(e.as_str()) {
            u.emails = vec![Email {
                address: e,
                verified: false,
            }];
        }
    }
    if let (Some(v), Some(first)) = (changes.verified, u.emails.first_mut()) {
        first.verified = v;
    }
    let new_password = changes.password_hash.is_some();
    if let Some(h) = changes.password_hash {
        u.password_hash = Some(h);
    }
    if let Some(r) = changes.roles {
        u.roles = r;
    }
    if let Some(a) = changes.active {
        u.active = a;
    }
    if leaves_no_admin(tx, &current, Some(&u)) {
        return Err(last_admin().by(METHOD));
    }
    u.updated_at = tx.now;
    save(tx, u);
    if new_password {
        let keep = (editor.id == user_id)
            .then_some(editor.token.as_deref())
            .flatten();
        tokens::revoke_other_logins(tx, user_id, keep);
    }
    if let Some(text) = changes.status_text.filter(|t| *t != current.status_text) {
        change::set_text(tx, user_id, text, Some(editor.id.clone()), Source::Rest)?;
    }
    tx.user(user_id)
        .map(|u| (*u).clone())
        .ok_or_else(Error::invalid_user)
}

/// Sets the password of the user named `username` (`statusd user set-password`), ending
/// every session of theirs.
pub fn set_password(tx: &mut Tx, username: &str, password_hash: String) -> Result<User> {
    let mut u = (*tx
        .user_by_username(username)
        .ok_or_else(Error::invalid_user)?)
    .clone();
    u.password_hash = Some(password_hash);
    u.updated_at = tx.now;
    save(tx, u.clone());
    tokens::revoke_other_logins(tx, &u.id, None);
    Ok(u)
}

/// Activates or deactivates the user named `username` (`statusd user enable|disable`).
/// Returns the user and how many tokens a deactivation revoked.
pub fn set_active(tx: &mut Tx, username: &str, active: bool) -> Result<(User, usize)> {
    let current = tx
        .user_by_username(username)
        .ok_or_else(Error::invalid_user)?;
    let mut u = (*current).clone();
    u.active = active;
    if leaves_no_admin(tx, &current, Some(&u)) {
        return Err(last_admin().by(METHOD));
    }
    u.updated_at = tx.now;
    let revoked = save(tx, u.clone());
    Ok((u, revoked))
}

/// Gives the user named `username` a role statusd knows (roles.addUserToRole,
/// `statusd user role --add`); the admin role only by a holder of `assign-admin-role`
/// (`check_admin_assignment`, checked by the caller). Returns the user.
pub fn add_role(tx: &mut Tx, username: &str, role: &str) -> Result<User> {
    let mut u = (*tx
        .user_by_username(username)
        .ok_or_else(Error::invalid_user)?)
    .clone();
    if u.has_role(role) {
        return Err(Error::refused(
            "error-user-already-in-role",
            "User already in role",
        ));
    }
    u.roles.push(role.to_string());
    u.updated_at = tx.now;
    save(tx, u.clone());
    Ok(u)
}

/// Takes a role from the user named `username` (roles.removeUserFromRole,
/// `statusd user role --remove`), never the last active admin's. Returns the user.
pub fn remove_role(tx: &mut Tx, username: &str, role: &str) -> Result<User> {
    let current = tx
        .user_by_username(username)
        .ok_or_else(Error::invalid_user)?;
    if !current.has_role(role) {
        return Err(Error::refused(
            "error-user-not-in-role",
            "User is not in this role",
        ));
    }
    let mut u = (*current).clone();
    u.roles.retain(|r| r != role);
    if leaves_no_admin(tx, &current, Some(&u)) {
        return Err(last_admin_role());
    }
    u.updated_at = tx.now;
    save(tx, u.clone());
    Ok(u)
}

/// A user named by id or by username.
pub enum Named<'a> {
    Id(&'a str),
    Username(&'a str),
}

/// Deletes a user (users.delete), never `rocket.cat` nor the last active admin:
/// watchers first see them go offline, then every token of theirs and the user go.
pub fn delete(tx: &mut Tx, who: Named) -> Result<()> {
    let user = match who {
        Named::Id(id) => tx.user(id),
        Named::Username(name) => tx.user_by_username(name),
    }
    .ok_or_else(Error::invalid_user)?;
    if user.id == ROCKET_CAT {
        return Err(Error::refused(
            "error-action-not-allowed",
            "Deleting the rocket.cat user is not allowed",
        )
        .by("deleteUser"));
    }
    if leaves_no_admin(tx, &user, None) {
        return Err(last_admin().by("deleteUser"));
    }
    if user.status != Status::Offline {
        // Tell the watchers the user is gone before the record goes.
        let mut gone = (*user).clone();
        gone.status = Status::Offline;
        gone.status_connection = Status::Offline;
        tx.put_user(gone);
    }
    tokens::revoke_all(tx, &user.id);
    tx.delete_user(&user.id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use parking_lot::RwLock;

    use super::*;
    use crate::model::{Token, TokenKind};
    use crate::state::Model;

    /// A person with `roles`, and a login token.
    fn person(tx: &mut Tx, name: &str, roles: &[&str]) {
        let mut u = new_user(name, name, tx.now);
        u.id = format!("{name}-id");
        u.roles = roles.iter().map(|r| r.to_string()).collect();
        tx.put_user(u);
        tx.put_token(Token {
            hashed: format!("{name}-token"),
            user_id: format!("{name}-id"),
            kind: TokenKind::Login,
            created_at: tx.now,
        });
    }

    fn code<T>(r: Result<T>) -> Option<String> {
        r.err().and_then(|e| e.code().map(str::to_string))
    }

    #[test]
    fn the_last_active_admin_stays_one_on_every_path() {
        let m = RwLock::new(Model::default());
        let mut tx = Tx::new(&m);
        person(&mut tx, "ann", &[ADMIN, "user"]);
        person(&mut tx, "bob", &["user"]);
        let deactivate = Changes {
            active: Some(false),
            ..Changes::default()
        };
        let demote = Changes {
            roles: Some(vec!["user".into()]),
            ..Changes::default()
        };
        let refused = Some("error-action-not-allowed".to_string());
        let op = Editor::operator();
        assert_eq!(code(update(&mut tx, "ann-id", deactivate, &op)), refused);
        assert_eq!(code(update(&mut tx, "ann-id", demote, &op)), refused);
        assert_eq!(code(set_active(&mut tx, "ann", false)), refused);
        assert_eq!(code(delete(&mut tx, Named::Username("ann"))), refused);
        assert_eq!(
            code(remove_role(&mut tx, "ann", ADMIN)),
            Some("error-remove-last-admin".to_string())
        );
        assert_eq!(tx.user_tokens("ann-id").len(), 1, "refusals change nothing");
        // With a second active admin, the first may go.
        add_role(&mut tx, "bob", ADMIN).unwrap();
        let (ann, revoked) = set_active(&mut tx, "ann", false).unwrap();
        assert!(!ann.active);
        assert_eq!(revoked, 1);
        // An inactive admin is no admin to keep: bob is now the last one.
        assert_eq!(code(set_active(&mut tx, "bob", false)), refused);
        let bob = tx.user("bob-id").unwrap();
        assert!(!leaves_no_admin(&tx, &ann, None), "ann is inactive");
        assert!(leaves_no_admin(&tx, &bob, None));
    }

    #[test]
    fn a_user_who_is_not_active_is_logged_out_everywhere() {
        let m = RwLock::new(Model::default());
        let mut tx = Tx::new(&m);
        person(&mut tx, "ann", &[ADMIN]);
        person(&mut tx, "cid", &["user"]);
        let u = update(
            &mut tx,
            "cid-id",
            Changes {
                active: Some(false),
                ..Changes::default()
            },
            &Editor::operator(),
        )
        .unwrap();
        assert!(!u.active);
        assert!(tx.user_tokens("cid-id").is_empty());
        assert_eq!(tx.user_tokens("ann-id").len(), 1);
    }

    #[test]
    fn new_accounts_follow_the_identity_and_role_rules() {
        let m = RwLock::new(Model::default());
        let mut tx = Tx::new(&m);
        person(&mut tx, "ann", &[ADMIN]);
        let acct = |username: &str, email: Option<&str>, roles: &[&str]| NewAccount {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..NewAccount::person(username, username, email.map(str::to_string))
        };
        let cases = [
            (
                acct("bad name", None, &["user"]),
                "error-input-is-not-a-valid-field",
            ),
            (acct("Here", None, &["user"]), "error-blocked-username"),
            (
                acct("\u{430}dmin", None, &["user"]),
                "error-input-is-not-a-valid-field",
            ),
            (acct("ANN", None, &["user"]), "error-field-unavailable"),
            (acct("dee", Some("nope"), &["user"]), "error-invalid-email"),
            (acct("dee", None, &["wizard"]), "error-invalid-role"),
        ];
        for (a, want) in cases {
            let name = a.username.clone();
            let got = code(create(&mut tx, a, Purpose::Create));
            assert_eq!(got, Some(want.to_string()), "{name}");
        }
        let dee = create(
            &mut tx,
            acct("dee", Some("dee@example.com"), &["user"]),
            Purpose::Create,
        )
        .unwrap();
        assert_eq!(tx.user_by_email("DEE@example.com").unwrap().id, dee.id);
        assert_eq!(
            code(create(
                &mut tx,
                acct("eve", Some("dee@example.com"), &["user"]),
                Purpose::Create
            )),
            Some("error-field-unavailable".to_string())
        );
    }

    #[test]
    fn editing_follows_the_profile_settings_and_permissions() {
        let m = RwLock::new(Model::default());
        let mut tx = Tx::new(&m);
        person(&mut tx, "ann", &[ADMIN]);
        person(&mut tx, "bob", &["user"]);
        let bob = tx.user("bob-id").unwrap();
        let me = Editor {
            id: "bob-id".into(),
            ..Editor::default()
        };
        let admin = Editor {
            id: "ann-id".into(),
            ..Editor::operator()
        };
        let text = Changes {
            status_text: Some("new".into()),
            ..Changes::default()
        };
        let name = Changes {
            name: Some("Bobby".into()),
            ..Changes::default()
        };
        let password = Changes {
            password_hash: Some("$2b$hash".into()),
            ..Changes::default()
        };
        let promote = Changes {
            roles: Some(vec![ADMIN.into()]),
            ..Changes::default()
        };
        let why = |r: Result<()>| r.err().map(|e| e.to_string());
        assert!(check_editing(&tx, &me, &bob, &text).is_ok());
        assert_eq!(
            why(check_editing(&tx, &me, &tx.user("ann-id").unwrap(), &name)),
            Some("Editing user is not allowed [error-action-not-allowed]".into())
        );
        assert_eq!(
            why(check_editing(&tx, &me, &bob, &promote)),
            Some("Assigning admin is not allowed [error-action-not-allowed]".into())
        );
        for (id, want) in [
            (
                "Accounts_AllowUserStatusMessageChange",
                "Edit user status is not allowed",
            ),
            (
                "Accounts_AllowRealNameChange",
                "Edit user real name is not allowed",
            ),
            (
                "Accounts_AllowPasswordChange",
                "Edit user password is not allowed",
            ),
        ] {
            tx.put_setting(id, serde_json::json!(false));
            let c = match id {
                "Accounts_AllowUserStatusMessageChange" => &text,
                "Accounts_AllowRealNameChange" => &name,
                _ => &password,
            };
            let want = Some(format!("{want} [error-action-not-allowed]"));
            assert_eq!(why(check_editing(&tx, &me, &bob, c)), want, "{id}");
            // An admin editing someone else is exempt; editing themself is not.
            assert!(check_editing(&tx, &admin, &bob, c).is_ok(), "{id}");
            tx.put_setting(id, serde_json::json!(true));
        }
        tx.put_setting("Accounts_AllowUserProfileChange", serde_json::json!(false));
        assert_eq!(
            why(check_editing(&tx, &me, &bob, &name)),
            Some("Edit user profile is not allowed [error-action-not-allowed]".into())
        );
        assert!(check_editing(&tx, &admin, &bob, &name).is_ok());
    }

    #[test]
    fn rocket_cat_is_never_deleted() {
        let m = RwLock::new(Model::default());
        let mut tx = Tx::new(&m);
        let mut cat = new_user(ROCKET_CAT, "Rocket.Cat", tx.now);
        cat.id = ROCKET_CAT.into();
        tx.put_user(cat);
        let e = delete(&mut tx, Named::Id(ROCKET_CAT)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Deleting the rocket.cat user is not allowed [error-action-not-allowed]"
        );
        assert!(tx.user(ROCKET_CAT).is_some());
    }
}
