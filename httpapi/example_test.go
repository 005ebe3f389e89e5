package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/sessiongate/sessiongate/httpapi"
)

// printPublisher prints what it is asked to publish.
type printPublisher struct{}

func (printPublisher) Publish(_ context.Context, t httpapi.Target, event string, data json.RawMessage) error {
	fmt.Println(t.To, event, string(data))
	return nil
}

func ExampleNew() {
	h, err := httpapi.New(httpapi.Config{Publisher: printPublisher{}, PublishKey: "secret-key"})
	if err != nil {
		panic(err)
	}
	body := `{"to":["user:42"],"event":"incident:created","data":{"id":1}}`
	req := httptest.NewRequest("POST", "/api/publish", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer secret-key")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	fmt.Print(rec.Code, " ", rec.Body.String())
	// Output:
	// [user:42] incident:created {"id":1}
	// 200 {"ok":true}
}
