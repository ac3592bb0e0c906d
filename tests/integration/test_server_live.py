"""A live server on 127.0.0.1 with a tiny model, called by the official clients it claims to serve."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import httpx
import openai
import pytest
import uvicorn

from trainforge.serving.app import create_app
from trainforge.serving.engine import Engine, GenerationParams

KEY = "sk-test-key"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    return Engine(tiny_model_dir, name="tiny-assistant")


def _start(engine, api_key):
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(engine, api_key=api_key), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert time.time() < deadline, "server did not start"
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def keyed(engine):
    server, thread, url = _start(engine, KEY)
    yield url
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def open_server(engine):
    server, thread, url = _start(engine, None)
    yield url
    server.should_exit = True
    thread.join(10)


def test_openai_client_chat_stream_completions_models(keyed, engine):
    client = openai.OpenAI(base_url=f"{keyed}/v1", api_key=KEY)
    assert [m.id for m in client.models.list().data] == ["tiny-assistant"]
    messages = [{"role": "user", "content": "what is the capital of france"}]
    chat = client.chat.completions.create(model="tiny-assistant", messages=messages, max_tokens=8)
    expected = engine.generate(engine.render_chat(messages), GenerationParams(max_new_tokens=8)).text
    assert chat.choices[0].message.content == expected
    assert chat.usage.completion_tokens <= 8 and chat.choices[0].finish_reason in ("stop", "length")
    stream = client.chat.completions.create(model="tiny-assistant", messages=messages, max_tokens=8, stream=True)
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert streamed == expected  # greedy: streaming and non-streaming agree
    completion = client.completions.create(model="tiny-assistant", prompt="hello how are", max_tokens=5)
    assert isinstance(completion.choices[0].text, str) and completion.usage.prompt_tokens > 0


def test_boto3_sagemaker_runtime_invoke_endpoint(open_server):
    runtime = boto3.client(
        "sagemaker-runtime",
        endpoint_url=open_server,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    body = {"inputs": "hello how are", "parameters": {"max_new_tokens": 5}}
    response = runtime.invoke_endpoint(
        EndpointName="tiny-assistant", ContentType="application/json", Body=json.dumps(body)
    )
    payload = json.loads(response["Body"].read())
    assert isinstance(payload["generated_text"], str) and payload["usage"]["completion_tokens"] <= 5
    chat = runtime.invoke_endpoint(
        EndpointName="tiny-assistant",
        ContentType="application/json",
        Body=json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}),
    )
    answer = json.loads(chat["Body"].read())  # LMI's chat schema: an OpenAI chat completion
    assert answer["object"] == "chat.completion" and answer["usage"]["completion_tokens"] <= 3
    assert isinstance(answer["choices"][0]["message"]["content"], str)
    with pytest.raises(runtime.exceptions.ClientError):
        runtime.invoke_endpoint(EndpointName="other", ContentType="application/json", Body=json.dumps(body))
    assert httpx.get(f"{open_server}/ping").json()["status"] == "healthy"


def test_two_hundred_concurrent_requests_all_succeed(keyed):
    def call(index: int) -> int:
        response = httpx.post(
            f"{keyed}/v1/chat/completions",
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=120,
            json={"messages": [{"role": "user", "content": f"hello {index}"}], "max_tokens": 2},
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(call, range(200)))
    assert statuses == [200] * 200


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "param"),
    [
        ("/v1/chat/completions", "{not json", {}, 400, None),
        ("/v1/chat/completions", {"model": "tiny-assistant"}, {}, 400, "messages"),
        ("/v1/chat/completions", {"messages": [{"role": "robot", "content": "x"}]}, {}, 400, "messages.0.role"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
            {},
            400,
            "max_tokens",
        ),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "model": "gpt-9"}, {}, 404, None),
        ("/v1/completions", {"max_tokens": 3}, {}, 400, "prompt"),
        ("/invocations", {"parameters": {}}, {}, 400, "inputs"),
        ("/invocations", {"inputs": "x", "parameters": {"max_new_tokens": "many"}}, {}, 400, "parameters"),
        ("/v1/models", None, {"Authorization": "Bearer wrong"}, 401, None),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}, {"Authorization": ""}, 401, None),
    ],
)
def test_bad_requests_get_4xx_json_never_5xx(keyed, path, body, headers, status, param):
    auth = {"Authorization": f"Bearer {KEY}", **headers}
    if body is None:
        response = httpx.get(keyed + path, headers=auth)
    else:
        content = body if isinstance(body, str) else json.dumps(body)
        response = httpx.post(keyed + path, content=content, headers={**auth, "Content-Type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"]
    if param is not None:
        assert error["param"] == param
