# syntax=docker/dockerfile:1
# Multi-stage: a static Go binary on distroless nonroot. CI builds the same `go build` line
# (hack/render-check.sh) because no Docker engine runs there.
ARG GO_VERSION=1.26.8
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/dns-tuner ./cmd/dns-tuner

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/dns-tuner /dns-tuner
# 65532 = nonroot; the chart's runAsUser matches.
USER 65532:65532
ENTRYPOINT ["/dns-tuner"]
CMD ["serve"]
