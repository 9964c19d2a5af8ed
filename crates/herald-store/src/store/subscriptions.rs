//! Webhook subscriptions: one tenant's delivery targets, their definitions
//! and signing secrets. A delete is a real delete: the row is gone, so a
//! delivery worker that reads the subscription before each attempt starts
//! none after the delete committed.

use herald_core::TenantId;

use crate::{
    SecretRotation, Store, StoreError, Subscription, SubscriptionPage, SubscriptionQuery,
    SubscriptionSpec,
};

impl Store {
    /// Stores a new subscription. `Conflict(SubscriptionNameExists)` when
    /// the tenant has one with the same `subscriber_name`.
    pub async fn insert_subscription(&self, subscription: Subscription) -> Result<(), StoreError> {
        each!(self, s => s.insert_subscription(subscription).await)
    }

    /// One subscription of the tenant; `None` when it has none with this id
    /// (another tenant's id included).
    pub async fn get_subscription(
        &self,
        tenant: &TenantId,
        subscription_id: &str,
    ) -> Result<Option<Subscription>, StoreError> {
        each!(self, s => s.get_subscription(tenant, subscription_id).await)
    }

    /// One page of the tenant's subscriptions, in creation order.
    pub async fn list_subscriptions(
        &self,
        tenant: &TenantId,
        query: &SubscriptionQuery,
    ) -> Result<SubscriptionPage, StoreError> {
        each!(self, s => s.list_subscriptions(tenant, query).await)
    }

    /// Replaces a subscription's definition (its secrets stay) and sets
    /// `updated_at`; the subscription as stored now, or `None` when the
    /// tenant has none with this id. `Conflict(SubscriptionNameExists)`
    /// when the new name is another subscription's.
    pub async fn update_subscription(
        &self,
        tenant: &TenantId,
        subscription_id: &str,
        spec: SubscriptionSpec,
        now: herald_core::Timestamp,
    ) -> Result<Option<Subscription>, StoreError> {
        each!(self, s => s.update_subscription(tenant, subscription_id, spec, now).await)
    }

    /// Makes `rotation.secret` the current secret; the one it replaces is
    /// kept as the previous secret, signing until
    /// `rotation.previous_expires_at` (a secret older than that is dropped).
    /// `None` when the tenant has no subscription with this id.
    pub async fn rotate_subscription_secret(
        &self,
        tenant: &TenantId,
        subscription_id: &str,
        rotation: SecretRotation,
    ) -> Result<Option<Subscription>, StoreError> {
        each!(self, s => s.rotate_subscription_secret(tenant, subscription_id, rotation).await)
    }

    /// Deletes a subscription; `false` when the tenant had none with this id.
    pub async fn delete_subscription(
        &self,
        tenant: &TenantId,
        subscription_id: &str,
    ) -> Result<bool, StoreError> {
        each!(self, s => s.delete_subscription(tenant, subscription_id).await)
    }
}
