// Command apiv2-client drives a server's /api/v2 through Tailscale's own Go API client
// (tailscale.com/client/tailscale/v2), one call per invocation, for headscale-rs's
// integration scenarios (TestAPIv2GoClient, TestAPIv2ScopesAndTags).
//
// Usage:
//
//	apiv2-client --url URL (--client-id ID --client-secret S [--scopes a,b] | --api-key K) SUBCOMMAND [ARGS]
//
// The secret and the API key may also come from APIV2_CLIENT_SECRET and APIV2_API_KEY, so
// they stay off the command line. Every subcommand prints one JSON value on stdout. When the
// server answers with an error, the program prints {"status": <code>, "message": "..."} on
// stdout and exits 3 (also for a refusal at the token endpoint); any other failure exits 1
// with a message on stderr, naming the last HTTP exchange when there was one.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	tailscale "tailscale.com/client/tailscale/v2"
)

const usage = `usage: apiv2-client --url URL (--client-id ID --client-secret S [--scopes a,b] | --api-key K) SUBCOMMAND [ARGS]

subcommands:
  keys-create [--tags a,b] [--reusable] [--ephemeral] [--preauthorized] [--expiry-seconds N] [--description D]
  keys-list [--all]
  keys-get ID
  keys-delete ID
  devices-list [--all-fields]
  device-get ID [--all-fields]
  device-delete ID
  device-authorize ID true|false
  device-tags ID tag:a,tag:b
  device-routes ID
  device-routes-set ID cidr,cidr
  device-name ID NAME
  device-key ID --expiry-disabled=BOOL
  policy-get
  policy-raw
  policy-set FILE [--etag E]
  policy-validate FILE
  dns-nameservers [--set a,b]
  dns-searchpaths [--set a,b]
  dns-split [--set JSON | --patch JSON]
  dns-preferences [--magic-dns BOOL]
  users-list
`

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1
	exitAPIError = 3
)

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// exchange is the last HTTP request and response seen, for failure messages.
type exchange struct {
	mu     sync.Mutex
	method string
	url    string
	status int
	body   string
}

func (x *exchange) String() string {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.method == "" {
		return ""
	}
	if x.status == 0 {
		return fmt.Sprintf("%s %s (no response)", x.method, x.url)
	}
	return fmt.Sprintf("%s %s answered %d: %q", x.method, x.url, x.status, x.body)
}

// recorder is an http.RoundTripper that notes each exchange in last; it never sends
// through a proxy (the servers under test are on loopback in a private namespace).
type recorder struct {
	base http.RoundTripper
	last *exchange
}

func (r recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.last.mu.Lock()
	r.last.method, r.last.url, r.last.status, r.last.body = req.Method, req.URL.Redacted(), 0, ""
	r.last.mu.Unlock()
	res, err := r.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("reading the answer to %s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	res.Body = io.NopCloser(bytes.NewReader(b))
	shown := string(b)
	if len(shown) > 512 {
		shown = shown[:512] + "..."
	}
	r.last.mu.Lock()
	r.last.status, r.last.body = res.StatusCode, shown
	r.last.mu.Unlock()
	return res, nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	last := &exchange{}
	client, rest, err := newClient(args, last)
	if err == nil {
		if len(rest) == 0 {
			err = usagef("no subcommand given")
		} else {
			var out any
			out, err = dispatch(client, rest[0], rest[1:])
			if err == nil {
				if werr := writeJSON(stdout, out); werr != nil {
					fmt.Fprintf(stderr, "apiv2-client: writing the answer: %v\n", werr)
					return exitFailure
				}
				return exitOK
			}
		}
	}
	return report(err, last, stdout, stderr)
}

// report prints err the way the package comment says and returns the exit code.
func report(err error, last *exchange, stdout, stderr io.Writer) int {
	var apiErr tailscale.APIError
	if errors.As(err, &apiErr) {
		_ = writeJSON(stdout, map[string]any{"status": apiErr.Status, "message": apiErr.Message})
		return exitAPIError
	}
	var tokErr *oauth2.RetrieveError
	if errors.As(err, &tokErr) && tokErr.Response != nil {
		msg := tokErr.ErrorCode
		if tokErr.ErrorDescription != "" {
			msg = strings.TrimPrefix(msg+": "+tokErr.ErrorDescription, ": ")
		}
		if msg == "" {
			msg = strings.TrimSpace(string(tokErr.Body))
		}
		_ = writeJSON(stdout, map[string]any{"status": tokErr.Response.StatusCode, "message": msg})
		return exitAPIError
	}
	var uerr usageError
	if errors.As(err, &uerr) {
		fmt.Fprintf(stderr, "apiv2-client: %v\n%s", err, usage)
		return exitFailure
	}
	if x := last.String(); x != "" {
		fmt.Fprintf(stderr, "apiv2-client: %v (last exchange: %s)\n", err, x)
	} else {
		fmt.Fprintf(stderr, "apiv2-client: %v\n", err)
	}
	return exitFailure
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// newClient reads the global flags and returns the API client and what follows them.
func newClient(args []string, last *exchange) (*tailscale.Client, []string, error) {
	fs := flag.NewFlagSet("apiv2-client", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	base := fs.String("url", "", "the server's base URL")
	id := fs.String("client-id", "", "OAuth client id")
	secret := fs.String("client-secret", "", "OAuth client secret (or APIV2_CLIENT_SECRET)")
	scopes := fs.String("scopes", "", "scopes to ask the token for, comma separated")
	apiKey := fs.String("api-key", "", "an API key instead of OAuth (or APIV2_API_KEY)")
	if err := fs.Parse(args); err != nil {
		return nil, nil, usagef("%v", err)
	}
	if *secret == "" {
		*secret = os.Getenv("APIV2_CLIENT_SECRET")
	}
	if *apiKey == "" {
		*apiKey = os.Getenv("APIV2_API_KEY")
	}
	if *base == "" {
		return nil, nil, usagef("--url is required")
	}
	u, err := url.Parse(*base)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, nil, usagef("--url %q is not an absolute URL", *base)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil
	rt := recorder{base: transport, last: last}
	// The OAuth token source fetches tokens with http.DefaultClient.
	http.DefaultClient.Transport = rt
	c := &tailscale.Client{
		BaseURL:   u,
		UserAgent: "hs-integration-apiv2-client",
		HTTP:      &http.Client{Transport: rt, Timeout: time.Minute},
	}
	switch {
	case *id != "" && *apiKey != "":
		return nil, nil, usagef("give either --client-id/--client-secret or --api-key, not both")
	case *id != "":
		if *secret == "" {
			return nil, nil, usagef("--client-id needs --client-secret (or APIV2_CLIENT_SECRET)")
		}
		c.Auth = &tailscale.OAuth{ClientID: *id, ClientSecret: *secret, Scopes: splitList(*scopes)}
	case *apiKey != "":
		if *scopes != "" {
			return nil, nil, usagef("--scopes applies to OAuth clients only")
		}
		c.APIKey = *apiKey
	default:
		return nil, nil, usagef("give --client-id and --client-secret, or --api-key")
	}
	return c, fs.Args(), nil
}

// splitList splits "a,b" into its non-empty items; "" is the empty list.
func splitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parse parses a subcommand's flags wherever they stand among its positional arguments and
// checks that there are exactly want of those.
func parse(fs *flag.FlagSet, args []string, want int, names string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) != want {
		if want == 0 {
			return nil, usagef("%s takes no arguments, got %q", fs.Name(), pos)
		}
		return nil, usagef("%s needs %s, got %q", fs.Name(), names, pos)
	}
	return pos, nil
}

// given reports whether flag name was set on the command line.
func given(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			found = true
		}
	})
	return found
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// nonNil turns a nil slice into an empty one, so lists print as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

var ok = map[string]bool{"ok": true}

func dispatch(c *tailscale.Client, cmd string, args []string) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	switch cmd {
	case "keys-create":
		tags := fs.String("tags", "", "tags, comma separated")
		reusable := fs.Bool("reusable", false, "")
		ephemeral := fs.Bool("ephemeral", false, "")
		preauthorized := fs.Bool("preauthorized", false, "")
		expiry := fs.Int64("expiry-seconds", 0, "")
		desc := fs.String("description", "", "")
		if _, err := parse(fs, args, 0, ""); err != nil {
			return nil, err
		}
		var req tailscale.CreateKeyRequest
		req.Capabilities.Devices.Create.Tags = splitList(*tags)
		req.Capabilities.Devices.Create.Reusable = *reusable
		req.Capabilities.Devices.Create.Ephemeral = *ephemeral
		req.Capabilities.Devices.Create.Preauthorized = *preauthorized
		req.ExpirySeconds = *expiry
		req.Description = *desc
		return c.Keys().CreateAuthKey(ctx, req)
	case "keys-list":
		all := fs.Bool("all", false, "")
		if _, err := parse(fs, args, 0, ""); err != nil {
			return nil, err
		}
		keys, err := c.Keys().List(ctx, *all)
		return nonNil(keys), err
	case "keys-get", "keys-delete":
		pos, err := parse(fs, args, 1, "ID")
		if err != nil {
			return nil, err
		}
		if cmd == "keys-get" {
			return c.Keys().Get(ctx, pos[0])
		}
		return ok, c.Keys().Delete(ctx, pos[0])
	case "devices-list":
		all := fs.Bool("all-fields", false, "")
		if _, err := parse(fs, args, 0, ""); err != nil {
			return nil, err
		}
		var devices []tailscale.Device
		var err error
		if *all {
			devices, err = c.Devices().ListWithAllFields(ctx)
		} else {
			devices, err = c.Devices().List(ctx)
		}
		return nonNil(devices), err
	case "device-get":
		all := fs.Bool("all-fields", false, "")
		pos, err := parse(fs, args, 1, "ID")
		if err != nil {
			return nil, err
		}
		if *all {
			return c.Devices().GetWithAllFields(ctx, pos[0])
		}
		return c.Devices().Get(ctx, pos[0])
	case "device-delete":
		pos, err := parse(fs, args, 1, "ID")
		if err != nil {
			return nil, err
		}
		return ok, c.Devices().Delete(ctx, pos[0])
	case "device-authorize":
		pos, err := parse(fs, args, 2, "ID and true|false")
		if err != nil {
			return nil, err
		}
		v, err := strconv.ParseBool(pos[1])
		if err != nil {
			return nil, usagef("device-authorize: %q is not true or false", pos[1])
		}
		return ok, c.Devices().SetAuthorized(ctx, pos[0], v)
	case "device-tags":
		pos, err := parse(fs, args, 2, "ID and tag:a,tag:b")
		if err != nil {
			return nil, err
		}
		return ok, c.Devices().SetTags(ctx, pos[0], splitList(pos[1]))
	case "device-routes":
		pos, err := parse(fs, args, 1, "ID")
		if err != nil {
			return nil, err
		}
		return c.Devices().SubnetRoutes(ctx, pos[0])
	case "device-routes-set":
		pos, err := parse(fs, args, 2, "ID and cidr,cidr")
		if err != nil {
			return nil, err
		}
		if err := c.Devices().SetSubnetRoutes(ctx, pos[0], splitList(pos[1])); err != nil {
			return nil, err
		}
		return c.Devices().SubnetRoutes(ctx, pos[0])
	case "device-name":
		pos, err := parse(fs, args, 2, "ID and NAME")
		if err != nil {
			return nil, err
		}
		return ok, c.Devices().SetName(ctx, pos[0], pos[1])
	case "device-key":
		disabled := fs.Bool("expiry-disabled", false, "")
		pos, err := parse(fs, args, 1, "ID")
		if err != nil {
			return nil, err
		}
		if !given(fs, "expiry-disabled") {
			return nil, usagef("device-key needs --expiry-disabled=true|false")
		}
		return ok, c.Devices().SetKey(ctx, pos[0], tailscale.DeviceKey{KeyExpiryDisabled: *disabled})
	case "policy-get":
		if _, err := parse(fs, args, 0, ""); err != nil {
			return nil, err
		}
		acl, err := c.PolicyFile().Get(ctx)
		if err != nil {
			return nil, err
		}
		return map[string]any{"acl": acl, "etag": acl.ETag}, nil
	case "policy-raw":
		if _, err := parse(fs, args, 0, ""); err != nil {
			return nil, err
		}
		raw, err := c.PolicyFile().Raw(ctx)
		if err != nil {
			return nil, err
		}
		return map[string]string{"hujson": raw.HuJSON, "etag": raw.ETag}, nil
	case "policy-set":
		etag := fs.String("etag", "", "If-Match: refuse unless the policy is still this version")
		pos, err := parse(fs, args, 1, "FILE")
		if err != nil {
			return nil, err
		}
		text, err := readFile(pos[0])
		if err != nil {
			return nil, err
		}
		return ok, c.PolicyFile().Set(ctx, text, *etag)
	case "policy-validate":
		pos, err := parse(fs, args, 1, "FILE")
		if err != nil {
			return nil, err
		}
		text, err := readFile(pos[0])
		if err != nil {
			return nil, err
		}
		err = c.PolicyFile().Validate(ctx, text)
		var apiErr tailscale.APIError
		switch {
		case err == nil:
			return map[string]any{"valid": true}, nil
		case errors.As(err, &apiErr):
			return nil, err
		case strings.HasPrefix(err.Error(), "ACL validation failed"):
			// A 200 answer carrying a message: the library's way of reporting an invalid policy.
			return map[string]any{"valid": false, "message": err.Error()}, nil
		default:
			return nil, err
		}
	case "dns-nameservers", "dns-searchpaths":
		set := fs.String("set", "", "replace the list (comma separated)")
		if _, err := parse(fs, args, 0, ""); err != nil {
			return nil, err
		}
		if cmd == "dns-nameservers" {
			if given(fs, "set") {
				if err := c.DNS().SetNameservers(ctx, splitList(*set)); err != nil {
					return nil, err
				}
			}
			ns, err := c.DNS().Nameservers(ctx)
			return map[string][]string{"dns": nonNil(ns)}, err
		}
		if given(fs, "set") {
			if err := c.DNS().SetSearchPaths(ctx, splitList(*set)); err != nil {
				return nil, err
			}
		}
		sp, err := c.DNS().SearchPaths(ctx)
		return map[string][]string{"searchPaths": nonNil(sp)}, err
	case "dns-split":
		set := fs.String("set", "", "replace the split DNS map (JSON object)")
		patch := fs.String("patch", "", "update the split DNS map (JSON object; null removes a domain)")
		if _, err := parse(fs, args, 0, ""); err != nil {
			return nil, err
		}
		if given(fs, "set") && given(fs, "patch") {
			return nil, usagef("dns-split: give --set or --patch, not both")
		}
		var resp tailscale.SplitDNSResponse
		var err error
		switch {
		case given(fs, "set"):
			var req tailscale.SplitDNSRequest
			if err := json.Unmarshal([]byte(*set), &req); err != nil {
				return nil, usagef("dns-split --set: %v", err)
			}
			if err := c.DNS().SetSplitDNS(ctx, req); err != nil {
				return nil, err
			}
			resp, err = c.DNS().SplitDNS(ctx)
		case given(fs, "patch"):
			var req tailscale.SplitDNSRequest
			if err := json.Unmarshal([]byte(*patch), &req); err != nil {
				return nil, usagef("dns-split --patch: %v", err)
			}
			resp, err = c.DNS().UpdateSplitDNS(ctx, req)
		default:
			resp, err = c.DNS().SplitDNS(ctx)
		}
		if err != nil {
			return nil, err
		}
		if resp == nil {
			resp = tailscale.SplitDNSResponse{}
		}
		return resp, nil
	case "dns-preferences":
		magic := fs.Bool("magic-dns", false, "turn MagicDNS on or off")
		if _, err := parse(fs, args, 0, ""); err != nil {
			return nil, err
		}
		if given(fs, "magic-dns") {
			if err := c.DNS().SetPreferences(ctx, tailscale.DNSPreferences{MagicDNS: *magic}); err != nil {
				return nil, err
			}
		}
		return c.DNS().Preferences(ctx)
	case "users-list":
		if _, err := parse(fs, args, 0, ""); err != nil {
			return nil, err
		}
		users, err := c.Users().List(ctx, nil, nil)
		return nonNil(users), err
	default:
		return nil, usagef("unknown subcommand %q", cmd)
	}
}
