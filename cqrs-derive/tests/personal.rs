//! `#[event(personal(...))]`: the declarations the derive generates, and the codec's
//! encode → seal → open → decode with them, the key present and forgotten.

use cqrs_core::codec;
use cqrs_core::personal::{self, DataKey, KeyState, PersonalValue, Subject, PERSONAL_KEY};
use cqrs_core::{DomainEvent, Metadata, NewEvent};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A string that must never be found in sealed data.
const MARKER: &str = "Ada-Lovelace-5e1c";

#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(prefix = "customer.", rename_all = "snake_case")]
enum CustomerEvent {
    Registered {
        customer_id: String,
        #[event(personal(subject = customer_id, forgotten = "[forgotten]"))]
        name: String,
        #[serde(rename = "mail")]
        #[event(personal(subject = customer_id))]
        email: String,
        plan: String,
    },
    Upgraded {
        customer_id: String,
        plan: String,
    },
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct Address {
    street: String,
    city: String,
}

impl Address {
    fn forgotten() -> Self {
        Address {
            street: "[forgotten]".into(),
            city: String::new(),
        }
    }
}

/// A struct event whose subject is an integer under a serde name, with a placeholder
/// of a struct type and a defaulted `Option`.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(name = "order.placed")]
struct OrderPlaced {
    order_id: u64,
    #[serde(rename = "buyer")]
    customer: u64,
    #[event(personal(subject = customer, forgotten = Address::forgotten()))]
    address: Address,
    #[event(personal(subject = customer))]
    phone: Option<String>,
    #[event(personal(subject = r#ref))]
    r#type: String,
    r#ref: u32,
}

#[derive(Debug, Clone, PartialEq, DomainEvent)]
enum Journey {
    #[event(flatten)]
    Customer(CustomerEvent),
    Closed,
}

fn registered() -> CustomerEvent {
    CustomerEvent::Registered {
        customer_id: "c-1".into(),
        name: MARKER.into(),
        email: "ada@example.com".into(),
        plan: "gold".into(),
    }
}

fn fields(list: &[cqrs_core::personal::PersonalField]) -> Vec<(&str, &str, Value)> {
    list.iter()
        .map(|f| (f.field, f.subject, (f.forgotten)()))
        .collect()
}

#[test]
fn the_declarations_use_stored_type_names_and_json_field_names() {
    assert_eq!(
        fields(CustomerEvent::personal_fields("customer.registered")),
        [
            ("name", "customer_id", json!("[forgotten]")),
            ("mail", "customer_id", json!("")),
        ]
    );
    assert!(CustomerEvent::personal_fields("customer.upgraded").is_empty());
    // The Rust name is not the stored one.
    assert!(CustomerEvent::personal_fields("Registered").is_empty());
    assert_eq!(
        fields(OrderPlaced::personal_fields("order.placed")),
        [
            (
                "address",
                "buyer",
                json!({ "street": "[forgotten]", "city": "" })
            ),
            ("phone", "buyer", Value::Null),
            ("type", "ref", json!("")),
        ]
    );
    // A flattened variant answers with its inner type's fields.
    assert_eq!(
        fields(Journey::personal_fields("customer.registered")),
        fields(CustomerEvent::personal_fields("customer.registered"))
    );
    assert!(Journey::personal_fields("Closed").is_empty());
}

/// Seals `new` with `key`, checks that no plaintext is left, and returns the data opened
/// with the key present and forgotten.
fn seal_and_open(mut new: NewEvent, key: &DataKey, secrets: &[&str]) -> (Value, Value) {
    new.seal(|_| Some(key)).expect("sealed");
    assert!(new.personal().is_empty());
    let text = serde_json::to_string(new.data()).expect("json");
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert!(new.data().get(PERSONAL_KEY).is_some());
    let present = personal::open(new.event_id(), new.data(), |_| KeyState::Present(key))
        .expect("opens")
        .expect("has a block");
    let forgotten = personal::open(new.event_id(), new.data(), |_| KeyState::Forgotten)
        .expect("opens")
        .expect("has a block");
    (present, forgotten)
}

#[test]
fn an_enum_event_round_trips_and_is_forgotten() {
    let new = codec::encode(&registered(), Metadata::default()).expect("encoded");
    assert_eq!(new.event_type(), "customer.registered");
    assert_eq!(
        new.data(),
        &json!({ "customer_id": "c-1", "plan": "gold" }),
        "no personal field in the data"
    );
    let subject = Subject::new("c-1").expect("valid");
    assert_eq!(
        new.personal(),
        [
            PersonalValue::new(subject.clone(), "name", json!(MARKER), json!("[forgotten]")),
            PersonalValue::new(subject, "mail", json!("ada@example.com"), json!("")),
        ]
    );
    assert!(!format!("{:?}", new).contains(MARKER), "Debug redacts");

    let key = DataKey::generate();
    let (present, forgotten) = seal_and_open(new, &key, &[MARKER, "ada@example.com"]);
    assert_eq!(
        CustomerEvent::decode("customer.registered", &present).expect("decodes"),
        registered()
    );
    assert_eq!(
        CustomerEvent::decode("customer.registered", &forgotten).expect("decodes"),
        CustomerEvent::Registered {
            customer_id: "c-1".into(),
            name: "[forgotten]".into(),
            email: String::new(),
            plan: "gold".into(),
        }
    );
}

#[test]
fn an_event_without_personal_fields_is_left_alone() {
    let upgraded = CustomerEvent::Upgraded {
        customer_id: "c-1".into(),
        plan: "gold".into(),
    };
    let mut new = codec::encode(&upgraded, Metadata::default()).expect("encoded");
    assert!(new.personal().is_empty());
    new.seal(|_| None).expect("nothing to seal");
    assert_eq!(new.data(), &json!({ "customer_id": "c-1", "plan": "gold" }));
    assert_eq!(
        personal::open(new.event_id(), new.data(), |_| KeyState::Forgotten),
        Ok(None)
    );
}

#[test]
fn a_struct_event_with_an_integer_subject() {
    let placed = OrderPlaced {
        order_id: 7,
        customer: 42,
        address: Address {
            street: MARKER.into(),
            city: "London".into(),
        },
        phone: Some("+44 20 7946 0000".into()),
        r#type: "private".into(),
        r#ref: 3,
    };
    let new = codec::encode(&placed, Metadata::default()).expect("encoded");
    assert_eq!(new.data(), &json!({ "order_id": 7, "buyer": 42, "ref": 3 }));
    let subjects: Vec<_> = new.personal().iter().map(|v| v.subject.as_str()).collect();
    assert_eq!(subjects, ["42", "42", "3"]);

    let key = DataKey::generate();
    let (present, forgotten) = seal_and_open(new, &key, &[MARKER, "London", "7946", "private"]);
    assert_eq!(
        OrderPlaced::decode("order.placed", &present).expect("decodes"),
        placed
    );
    assert_eq!(
        OrderPlaced::decode("order.placed", &forgotten).expect("decodes"),
        OrderPlaced {
            address: Address::forgotten(),
            phone: None,
            r#type: String::new(),
            ..placed
        }
    );
}

#[test]
fn a_flattened_event_is_sealed_by_its_inner_declarations() {
    let journey = Journey::Customer(registered());
    let new = codec::encode(&journey, Metadata::default()).expect("encoded");
    assert_eq!(new.personal().len(), 2);
    let key = DataKey::generate();
    let (present, _) = seal_and_open(new, &key, &[MARKER]);
    assert_eq!(
        Journey::decode("customer.registered", &present).expect("decodes"),
        journey
    );
}
