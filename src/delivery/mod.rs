//! Push delivery of events to webhooks: signing, the network guard, payload
//! conditions, the retry policy, the HTTP sender and the per-subscription
//! workers that pull from each subscription's durable consumer.

pub mod condition;
pub mod guard;
pub mod outcome;
pub mod signing;
