module github.com/sessiongate/sessiongate

go 1.26.8
