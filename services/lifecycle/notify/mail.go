package notify

import (
	"context"
	"fmt"
	"net"
	"net/smtp"
	"strings"
	"time"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
)

// SMTP sends e-mail through one relay with net/smtp (STARTTLS when the relay offers it; PLAIN
// authentication when Username is set, which net/smtp allows only over TLS or to localhost).
type SMTP struct {
	Addr     string // host:port
	Username string
	Password string
	From     string
}

// Send implements Mailer. net/smtp.SendMail takes no context: the deadline bounds the dial, and
// the connection is closed when ctx ends.
func (m *SMTP) Send(ctx context.Context, to, subject, body string) error {
	var auth smtp.Auth
	host, _, err := net.SplitHostPort(m.Addr)
	if err != nil {
		return fmt.Errorf("smtp addr: %w", err)
	}
	if m.Username != "" {
		auth = smtp.PlainAuth("", m.Username, m.Password, host)
	}
	dialer := net.Dialer{}
	conn, err := dialer.DialContext(ctx, "tcp", m.Addr)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(nil); err != nil {
			return err
		}
	}
	if auth != nil {
		if err := c.Auth(auth); err != nil {
			return err
		}
	}
	if err := c.Mail(m.From); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(Message(m.From, to, subject, body, time.Now())); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// Message is an RFC 5322 plain-text message. Header values come from our own templates and ids
// (no CR or LF can reach them).
func Message(from, to, subject, body string, date time.Time) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\n", from, to, subject, date.UTC().Format(time.RFC1123Z))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	b.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	return []byte(b.String())
}

// subjects are the e-mail subjects of each kind.
var subjects = map[lifecyclev1.NotificationKind]string{
	lifecyclev1.NotificationKind_NOTIFICATION_KIND_RECORDS_TO_PUBLISH:    "DNS records to publish",
	lifecyclev1.NotificationKind_NOTIFICATION_KIND_ISSUED:                "Certificate issued",
	lifecyclev1.NotificationKind_NOTIFICATION_KIND_RENEWED:               "Certificate renewed",
	lifecyclev1.NotificationKind_NOTIFICATION_KIND_RENEWAL_FAILED:        "Renewal failed",
	lifecyclev1.NotificationKind_NOTIFICATION_KIND_SUPPORT_CASE_OPENED:   "Support case opened",
	lifecyclev1.NotificationKind_NOTIFICATION_KIND_SUPPORT_CASE_UPDATED:  "Support case updated",
	lifecyclev1.NotificationKind_NOTIFICATION_KIND_SUPPORT_CASE_RESOLVED: "Support case resolved",
	lifecyclev1.NotificationKind_NOTIFICATION_KIND_COVERAGE_LAPSED:       "Coverage lapsed",
	lifecyclev1.NotificationKind_NOTIFICATION_KIND_HOSTING_ENDING:        "Hosting ending",
	lifecyclev1.NotificationKind_NOTIFICATION_KIND_EXPIRY_REMINDER:       "Certificate expires soon",
}

// EmailText is the subject and body of a notification's e-mail.
func EmailText(p *lifecyclev1.NotificationPayload) (subject, body string) {
	subject = "[certhosting] " + subjects[p.GetKind()] + ": " + p.GetCertificateId()
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", subjects[p.GetKind()])
	fmt.Fprintf(&b, "Bundle:       %s\nCertificate:  %s\n", p.GetBundleId(), p.GetCertificateId())
	if p.GetSupportCaseId() != "" {
		fmt.Fprintf(&b, "Support case: %s\n", p.GetSupportCaseId())
	}
	fmt.Fprintf(&b, "When:         %s\n", p.GetEventTime().AsTime().Format(time.RFC3339))
	if p.GetReason() != "" {
		fmt.Fprintf(&b, "\n%s\n", p.GetReason())
	}
	fmt.Fprintf(&b, "\nNotification %s (%s).\n", p.GetNotificationId(), p.GetEventType())
	return subject, b.String()
}
