package socketio

import "github.com/sessiongate/sessiongate/engineio"

// EngineStats returns the counters of the Engine.IO server beneath s:
// sessions, those not yet admitted (no namespace joined), and handshakes
// and sessions refused or closed by its limits, by reason.
func (s *Server) EngineStats() engineio.Stats { return s.engine.Stats() }
