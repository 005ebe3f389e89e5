package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/expresssession"
	"github.com/sessiongate/sessiongate/internal/ratelimit"
)

// maxLoginBody bounds a /auth/login body.
const maxLoginBody = 16 << 10

// userBody is the user as /auth/login and /auth/me return it.
type userBody struct {
	ID    int64  `json:"id"`
	Email string `json:"email"`
}

type userResponse struct {
	User userBody `json:"user"`
}

// dummyHash returns a bcrypt hash at the default cost, compared against
// when a login names no user so that the answer takes as long as for a
// wrong password. It is computed once per process.
var dummyHash = sync.OnceValues(func() ([]byte, error) {
	h, err := bcrypt.GenerateFromPassword([]byte("sessiongate-no-such-user"), bcrypt.DefaultCost)
	if err != nil {
		return nil, fmt.Errorf("httpapi: dummy hash: %w", err)
	}
	return h, nil
})

// login serves POST /auth/login (contract §7): it checks the password and
// creates a session as express-session + passport do after req.login:
// a new sid (the old session, if any, is destroyed: no fixation), a row
// {"cookie":{...},"passport":{"user":<id>}}, and the Set-Cookie header.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if refusal := h.checkBrowserRequest(w, r, true); refusal != nil {
		h.logins.inc(refusal.result)
		return
	}
	ip := h.clients.ClientIP(r.RemoteAddr, r.Header)
	if h.limiter != nil {
		if ok, wait := h.limiter.Allow(ratelimit.Key(ip), h.now()); !ok {
			h.logins.inc(LoginRateLimited)
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			writeError(w, http.StatusTooManyRequests, "too many login attempts")
			return
		}
	}
	var creds struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxLoginBody))
	if err != nil || json.Unmarshal(body, &creds) != nil {
		h.logins.inc(LoginBadRequest)
		writeError(w, http.StatusBadRequest, `body must be {"email":"…","password":"…"}`)
		return
	}
	ctx := r.Context()
	user, err := h.cfg.Users.UserByEmail(ctx, strings.TrimSpace(creds.Email))
	switch {
	case sessiongate.ErrorCode(err) == sessiongate.ECodeNotFound:
		_ = bcrypt.CompareHashAndPassword(h.dummy, []byte(creds.Password))
		h.refuseLogin(w, ip)
		return
	case err != nil:
		h.internalError(w, "login: find user", err)
		return
	}
	if bcrypt.CompareHashAndPassword([]byte(user.PasswordHash), []byte(creds.Password)) != nil {
		h.refuseLogin(w, ip)
		return
	}

	// Regenerate: the session the browser came with, if any, is destroyed.
	if old, err := expresssession.SessionIDFromHeader(r.Header, h.cfg.CookieName, h.cfg.Secrets); err == nil {
		if err := h.cfg.Sessions.DeleteSession(ctx, old); err != nil {
			h.internalError(w, "login: destroy previous session", err)
			return
		}
	}
	sid := expresssession.NewSessionID()
	cookie := h.cookieOptions()
	data, expires := cookie.NewSession(strconv.FormatInt(user.ID, 10), h.now())
	sess := &sessiongate.Session{ID: sid, Data: data, Expire: expresssession.StoreExpire(expires)}
	if err := h.cfg.Sessions.SaveSession(ctx, sess); err != nil {
		h.internalError(w, "login: save session", err)
		return
	}
	w.Header().Add("Set-Cookie", cookie.SetCookie(h.cfg.CookieName, sid, h.cfg.Secrets[0], expires))
	h.logins.inc(LoginOK)
	h.log.Info("login", "user_id", user.ID, "session", sessiongate.ShortHash(sid), "remote", ip)
	writeJSON(w, http.StatusOK, userResponse{User: userBody{ID: user.ID, Email: user.Email}})
}

func (h *Handler) cookieOptions() expresssession.CookieOptions {
	return expresssession.CookieOptions{
		MaxAge:   h.cfg.SessionMaxAge,
		Path:     "/",
		HTTPOnly: true,
		Secure:   h.cfg.CookieSecure,
		SameSite: http.SameSiteLaxMode,
	}
}

// clearCookie returns the Set-Cookie header that makes the browser forget
// the session cookie, as Express's res.clearCookie writes it.
func (h *Handler) clearCookie() string {
	c := http.Cookie{
		Name:     h.cfg.CookieName,
		Path:     "/",
		Expires:  time.UnixMilli(1),
		HttpOnly: true,
		Secure:   h.cfg.CookieSecure,
		SameSite: http.SameSiteLaxMode,
	}
	return c.String()
}

func (h *Handler) refuseLogin(w http.ResponseWriter, ip string) {
	h.logins.inc(LoginInvalidCredentials)
	h.log.Info("login refused", "remote", ip)
	writeError(w, http.StatusUnauthorized, "invalid credentials")
}

func (h *Handler) internalError(w http.ResponseWriter, msg string, err error) {
	h.log.Error(msg, "err", err)
	writeError(w, http.StatusInternalServerError, "internal error")
}

// logout serves POST /auth/logout: as passport's req.logout, each session
// the request names with a validly signed cookie (a browser sends one per
// path and domain it holds) is saved with "passport":{} and then destroyed,
// and its sockets are ended (reason logged_out); the cookie is cleared. It
// answers 200 whether or not there was a session.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if h.checkBrowserRequest(w, r, true) != nil {
		return
	}
	for _, sid := range expresssession.SessionIDsFromHeader(r.Header, h.cfg.CookieName, h.cfg.Secrets) {
		if err := h.endSession(r.Context(), sid); err != nil {
			h.internalError(w, "logout", err)
			return
		}
	}
	w.Header().Add("Set-Cookie", h.clearCookie())
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// endSession logs session sid out and destroys it; a session that is not
// in the store is no error.
func (h *Handler) endSession(ctx context.Context, sid string) error {
	sess, err := h.cfg.Sessions.Session(ctx, sid)
	switch {
	case sessiongate.ErrorCode(err) == sessiongate.ECodeNotFound:
		return nil
	case err != nil:
		return fmt.Errorf("find session: %w", err)
	}
	if data, err := expresssession.Logout(sess.Data); err == nil {
		sess.Data = data
		if err := h.cfg.Sessions.SaveSession(ctx, sess); err != nil {
			return fmt.Errorf("save session: %w", err)
		}
	}
	if err := h.cfg.Sessions.DeleteSession(ctx, sid); err != nil {
		return fmt.Errorf("destroy session: %w", err)
	}
	if h.cfg.Ender != nil {
		h.cfg.Ender.EndSession(ctx, sid, sessiongate.EndLoggedOut)
	}
	h.log.Info("logout", "session", sessiongate.ShortHash(sid))
	return nil
}

// errNotAuthenticated is why /auth/me refuses.
var errNotAuthenticated = errors.New("not authenticated")

// me serves GET /auth/me: the user of a valid, logged-in session, or 401.
func (h *Handler) me(w http.ResponseWriter, r *http.Request) {
	user, err := h.currentUser(r)
	switch {
	case errors.Is(err, errNotAuthenticated):
		writeError(w, http.StatusUnauthorized, errNotAuthenticated.Error())
	case err != nil:
		h.internalError(w, "me", err)
	default:
		writeJSON(w, http.StatusOK, userResponse{User: userBody{ID: user.ID, Email: user.Email}})
	}
}

// currentUser returns the user of r's session, or errNotAuthenticated when
// there is no valid logged-in session or its user is gone.
func (h *Handler) currentUser(r *http.Request) (*sessiongate.User, error) {
	ctx := r.Context()
	sid, err := expresssession.SessionIDFromHeader(r.Header, h.cfg.CookieName, h.cfg.Secrets)
	if err != nil {
		return nil, errNotAuthenticated
	}
	sess, err := h.cfg.Sessions.Session(ctx, sid)
	if sessiongate.ErrorCode(err) == sessiongate.ECodeNotFound {
		return nil, errNotAuthenticated
	} else if err != nil {
		return nil, fmt.Errorf("find session: %w", err)
	}
	if !sess.Valid(h.now()) {
		return nil, errNotAuthenticated
	}
	uid, ok, err := expresssession.UserID(sess.Data)
	if err != nil || !ok {
		return nil, errNotAuthenticated
	}
	id, err := strconv.ParseInt(uid, 10, 64)
	if err != nil {
		// A user id this login did not write (a Node app's string id).
		return nil, errNotAuthenticated
	}
	user, err := h.cfg.Users.UserByID(ctx, id)
	if sessiongate.ErrorCode(err) == sessiongate.ECodeNotFound {
		return nil, errNotAuthenticated
	} else if err != nil {
		return nil, fmt.Errorf("find user: %w", err)
	}
	return user, nil
}
