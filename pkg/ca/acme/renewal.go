package acme

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"

	"github.com/certhosting/certhosting/pkg/ca"
)

// RenewalInfo implements ca.RenewalInformer with the CA's renewalInfo endpoint (RFC 9773): the
// suggested window of the chain's leaf, when to ask again, and the CA's explanation URL. ok is
// false when the directory has no renewalInfo. A window the CA got wrong (end not after start)
// counts as no answer, as RFC 9773 §4.2 says, and is a transient error.
func (c *Client) RenewalInfo(ctx context.Context, chainPEM []byte) (ca.RenewalWindow, bool, error) {
	certID, err := ariCertID(chainPEM)
	if err != nil {
		return ca.RenewalWindow{}, false, fmt.Errorf("acme: renewal info: certificate: %w", err)
	}
	core, err := c.getCore(ctx)
	if err != nil {
		return ca.RenewalWindow{}, false, err
	}
	if core.GetDirectory().RenewalInfo == "" {
		return ca.RenewalWindow{}, false, nil
	}
	var info *acme.ExtendedRenewalInfo
	after, err := c.call(ctx, func(ctx context.Context) (err error) {
		info, err = core.Certificates.GetRenewalInfo(ctx, certID)
		return err
	})
	if errors.Is(err, api.ErrNoARI) {
		err = errors.New("the CA sent a window whose end is not after its start")
	}
	if err != nil {
		return ca.RenewalWindow{}, false, c.transient(ctx, "renewal info "+certID, err, after)
	}
	w := ca.RenewalWindow{
		Start: info.SuggestedWindow.Start.UTC(), End: info.SuggestedWindow.End.UTC(),
		RetryAfter: after, ExplanationURL: info.ExplanationURL,
	}
	if w.RetryAfter == 0 {
		w.RetryAfter = info.RetryAfter
	}
	return w, true, nil
}
