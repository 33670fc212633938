// Package notify delivers the lifecycle service's notifications: signed webhooks (Standard
// Webhooks) and e-mail, from a durable queue in the lifecycle database, with retries.
//
// The queue is fed by a fan-out that follows the events table from a cursor persisted in the
// same transaction as the notification rows it writes (store.FanOut), so every history event is
// turned into notifications exactly once however the process stops; delivery is at least once.
// Each webhook endpoint is a lane served by at most one worker at a time (all e-mail shares the
// "smtp" lane): a slow or dead endpoint holds up only its own deliveries, never another
// endpoint's, and never a renewal, which does not wait for notifications at all.
package notify

import (
	"strings"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// kindOfEvent maps a history event type to what it notifies. issued is ISSUED or RENEWED (decided
// by KindOf from the bundle's history); application_submitted is RECORDS_TO_PUBLISH only for DNS
// validation. Types not here are not notified.
var kindOfEvent = map[string]lifecyclev1.NotificationKind{
	store.EventApplicationSubmitted: lifecyclev1.NotificationKind_NOTIFICATION_KIND_RECORDS_TO_PUBLISH,
	store.EventIssued:               lifecyclev1.NotificationKind_NOTIFICATION_KIND_ISSUED,
	store.EventRenewalFailed:        lifecyclev1.NotificationKind_NOTIFICATION_KIND_RENEWAL_FAILED,
	store.EventSupportCaseOpened:    lifecyclev1.NotificationKind_NOTIFICATION_KIND_SUPPORT_CASE_OPENED,
	store.EventSupportCaseUpdated:   lifecyclev1.NotificationKind_NOTIFICATION_KIND_SUPPORT_CASE_UPDATED,
	store.EventSupportCaseResolved:  lifecyclev1.NotificationKind_NOTIFICATION_KIND_SUPPORT_CASE_RESOLVED,
	store.EventCoverageLapsed:       lifecyclev1.NotificationKind_NOTIFICATION_KIND_COVERAGE_LAPSED,
	store.EventHostingEnding:        lifecyclev1.NotificationKind_NOTIFICATION_KIND_HOSTING_ENDING,
	store.EventExpiryReminder:       lifecyclev1.NotificationKind_NOTIFICATION_KIND_EXPIRY_REMINDER,
}

// KindOf is what an event notifies: ok is false for types that are not notified. renewal says
// whether the bundle had an issuance before (an issued event is then RENEWED); dnsValidated
// whether the event's application is validated by DNS records the customer publishes.
func KindOf(eventType string, renewal, dnsValidated bool) (k lifecyclev1.NotificationKind, ok bool) {
	k, ok = kindOfEvent[eventType]
	switch {
	case !ok:
		return 0, false
	case k == lifecyclev1.NotificationKind_NOTIFICATION_KIND_ISSUED && renewal:
		return lifecyclev1.NotificationKind_NOTIFICATION_KIND_RENEWED, true
	case k == lifecyclev1.NotificationKind_NOTIFICATION_KIND_RECORDS_TO_PUBLISH && !dnsValidated:
		return 0, false
	}
	return k, true
}

// KindName is the stored name of a kind: the enum name without its prefix ("ISSUED").
func KindName(k lifecyclev1.NotificationKind) string {
	return strings.TrimPrefix(k.String(), "NOTIFICATION_KIND_")
}

// ParseKind is KindName's inverse; unknown names are UNSPECIFIED.
func ParseKind(name string) lifecyclev1.NotificationKind {
	return lifecyclev1.NotificationKind(lifecyclev1.NotificationKind_value["NOTIFICATION_KIND_"+name])
}

// Wants reports whether an endpoint's stored kinds (space-separated names, empty: every kind)
// include k.
func Wants(kinds string, k lifecyclev1.NotificationKind) bool {
	if kinds == "" {
		return true
	}
	for _, n := range strings.Fields(kinds) {
		if n == KindName(k) {
			return true
		}
	}
	return false
}

// emailsEngineer says which kinds also go to the support engineer of the event's case.
func emailsEngineer(k lifecyclev1.NotificationKind) bool {
	switch k {
	case lifecyclev1.NotificationKind_NOTIFICATION_KIND_RENEWAL_FAILED,
		lifecyclev1.NotificationKind_NOTIFICATION_KIND_SUPPORT_CASE_OPENED,
		lifecyclev1.NotificationKind_NOTIFICATION_KIND_SUPPORT_CASE_UPDATED,
		lifecyclev1.NotificationKind_NOTIFICATION_KIND_SUPPORT_CASE_RESOLVED:
		return true
	}
	return false
}
